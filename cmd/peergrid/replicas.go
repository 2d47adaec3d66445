package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/peergrid/peergrid/api"
)

// shortHash is how many hex digits of a result hash `job status` shows:
// enough to tell the results of one task apart at a glance.
const shortHash = 12

// printReplicas prints, for a job with replicas, every replica of every
// task: its worker, attempt, result hash (short), exit code and verdict,
// so a disagreement shows who said what. Nothing for an R=1 job.
func (m *Main) printReplicas(ts []api.TaskStatus) error {
	if !hasReplicas(ts) {
		return nil
	}
	fmt.Fprintln(m.Stdout, "replicas:")
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TASK\tATTEMPT\tWORKER\tHASH\tEXIT\tVERDICT")
	for _, t := range ts {
		for _, r := range t.Replicas {
			fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\t%s\n", t.Index, r.Attempt, termSafe(r.Worker), short(r.Hash), exitOf(r.ExitCode), termSafe(r.Verdict))
		}
	}
	return tw.Flush()
}

func hasReplicas(ts []api.TaskStatus) bool {
	for _, t := range ts {
		if len(t.Replicas) > 0 {
			return true
		}
	}
	return false
}

// short is the first shortHash characters of a hash, "-" for none. The
// hash comes from the server, but is shown terminal-safe all the same.
func short(hash string) string {
	if hash == "" {
		return "-"
	}
	if len(hash) > shortHash {
		hash = hash[:shortHash]
	}
	return termSafe(hash)
}

func exitOf(code *int) string {
	if code == nil {
		return "-"
	}
	return fmt.Sprint(*code)
}
