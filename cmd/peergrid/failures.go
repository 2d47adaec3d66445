package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
)

// Failures shown at the end of `submit --wait`, `job wait` and `job
// status`, and the stderr lines shown of each.
const (
	failuresShown   = 3
	stderrLinesEach = 5
)

// printFailures prints the job's first failed tasks (index, kind, message,
// the last lines of stderr) and the commands that show the rest. It finds
// them in the tasks' states (st) and reads the results of only those, so a
// large job costs no more than `job status`. It is a courtesy after the job's outcome: if the failures cannot
// be read it says so in one line rather than failing the command.
func (m *Main) printFailures(ctx context.Context, c *client.Client, id string, st *api.JobStatus) {
	first, err := firstFailures(ctx, c, id, st)
	if err != nil {
		fmt.Fprintf(m.Stderr, "(could not read the failures: %v)\n", explain(err, m.addr))
		return
	}
	fmt.Fprintf(m.Stderr, "%d task(s) failed; the first %d:\n", st.Failed, len(first))
	for _, r := range first {
		fmt.Fprintf(m.Stderr, "  task %d: %s: %s\n", r.Index, r.ErrorKind, termSafeText(failureMessage(r)))
		for _, line := range lastLines(r.Stderr, stderrLinesEach) {
			fmt.Fprintf(m.Stderr, "    | %s\n", termSafeText(line))
		}
	}
	fmt.Fprintf(m.Stderr, "all tasks: peergrid job status %s; every stderr: peergrid job results %s --out DIR\n", id, id)
}

func firstFailures(ctx context.Context, c *client.Client, id string, st *api.JobStatus) ([]*api.TaskResult, error) {
	var out []*api.TaskResult
	for _, t := range st.TaskStats {
		if t.State != tasks.TaskFailed {
			continue
		}
		r, err := c.TaskResult(ctx, id, t.Index)
		if err != nil {
			return nil, err
		}
		if out = append(out, r); len(out) == failuresShown {
			break
		}
	}
	return out, nil
}

// lastLines is the last n non-empty-at-the-end lines of b, each cut to a
// screen's width.
func lastLines(b []byte, n int) []string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return nil
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 120 {
			lines[i] = l[:117] + "..."
		}
	}
	return lines
}

// failureMessage is a failed task's error on one line, cut to a screen's
// width, except a no_quorum error, whose whole point is its evidence: every
// hash seen and the workers that gave it.
func failureMessage(r *api.TaskResult) string {
	if r.ErrorKind == tasks.ErrNoQuorum {
		return strings.ReplaceAll(r.Error, "\n", " ")
	}
	return oneLine(r.Error)
}
