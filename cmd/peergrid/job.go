package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
)

func (m *Main) runJob(ctx context.Context, args []string) (int, error) {
	subs := map[string]subcommand{
		"submit": m.jobSubmit, "status": m.jobStatus, "results": m.jobResults,
		"cancel": m.jobCancel, "list": m.jobList, "purge": m.jobPurge, "wait": m.jobWait,
	}
	return m.dispatch(ctx, "job", args, subs, `Usage: peergrid job <command>

  submit FILE [--wait] [--json]   submit a job file (TOML); --wait shows progress, exits 1 if a task failed
  wait ID [--json]                follow a submitted job like submit --wait (exit 0, 1, or 130 on Ctrl-C)
  status ID [--json]              the job's state and every task's; the first failures with their stderr
  results ID --out DIR            write DIR/<index>.out and DIR/<index>.err
  cancel ID                       cancel a job: unfinished tasks will not run
  purge ID                        forget a finished job and its results; blobs only it used are garbage-collected
  list [--json]                   all jobs`)
}

func (m *Main) jobSubmit(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job submit", "job submit FILE [--wait] [--json]")
	cf := m.addClientFlags(fs, true)
	wait := fs.Bool("wait", false, "wait for the job: a progress bar, exit 0 when all tasks are done, 1 when any failed, 130 on Ctrl-C (the job runs on)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitError, errUsage
	}
	jf, err := tasks.ParseFile(pos[0])
	if err != nil {
		return exitError, err // nothing was submitted
	}
	if err := m.buildModule(ctx, jf); err != nil {
		return exitError, err
	}
	if err := checkModuleFile(jf.ModulePath); err != nil {
		return exitError, err // nothing was uploaded
	}
	c := m.client(cf)
	id, err := c.SubmitJobFile(ctx, jf)
	var se *client.StatusError
	if errors.As(err, &se) && se.Code == http.StatusTooManyRequests {
		return exitError, fmt.Errorf("submit %s: %w\n(an operator sets a credential's quotas: peergrid acl token create --max-...; acl token list shows them)", pos[0], err)
	}
	if err != nil {
		return exitError, fmt.Errorf("submit %s: %w", pos[0], err)
	}
	if cf.json && !*wait {
		return exitOK, m.printJSON(api.SubmitResponse{ID: id})
	}
	if !cf.json {
		fmt.Fprintf(m.Stdout, "submitted job %s (%s, %d tasks)\n", id, termSafe(jf.Name), jf.Tasks)
	}
	if !*wait {
		return exitOK, nil
	}
	return m.waitJob(ctx, c, id, cf.json)
}

func (m *Main) jobWait(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job wait", "job wait ID [--json]")
	cf := m.addClientFlags(fs, true)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	return m.waitJob(ctx, m.client(cf), id, cf.json)
}

// waitJob follows a job to its end with a progress bar on Stderr. Ctrl-C
// stops the waiting, not the job: it says so, how to follow the job again
// and how to cancel it, and exits exitInterrupted.
func (m *Main) waitJob(ctx context.Context, c *client.Client, id string, asJSON bool) (int, error) {
	bar := newProgressBar(m.Stderr)
	sum, err := c.WaitJob(ctx, id, 200*time.Millisecond, bar.update)
	bar.finish()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(m.Stderr, "stopped waiting; job %s keeps running on the grid.\n  follow it again: peergrid job wait %s\n  cancel it:       peergrid job cancel %s\n", id, id, id)
		return exitInterrupted, nil
	}
	if err != nil {
		return exitError, err
	}
	if asJSON {
		if err := m.printJSON(map[string]any{"id": id, "state": sum.State}); err != nil {
			return exitError, err
		}
	} else {
		fmt.Fprintf(m.Stdout, "job %s %s: %d done, %d failed of %d\n", id, sum.State, sum.Done, sum.Failed, sum.Tasks)
	}
	if sum.Failed > 0 {
		if st, err := c.Job(ctx, id); err != nil {
			fmt.Fprintf(m.Stderr, "(could not read the failures: %v)\n", explain(err, m.addr))
		} else {
			m.printFailures(ctx, c, id, st)
		}
	}
	if sum.State != tasks.JobComplete {
		return exitJobFailed, nil
	}
	return exitOK, nil
}

func (m *Main) jobStatus(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job status", "job status ID [--json]")
	cf := m.addClientFlags(fs, true)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	c := m.client(cf)
	st, err := c.Job(ctx, id)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(st)
	}
	fmt.Fprintf(m.Stdout, "job %s (%s): %s\n  %d tasks: %d queued, %d leased, %d done, %d failed\n",
		st.ID, termSafe(st.Name), st.State, st.Tasks, st.Queued, st.Leased, st.Done, st.Failed)
	if st.GridEngine != "" {
		fmt.Fprintf(m.Stdout, "  engine: %s (grid choice)\n", termSafe(st.GridEngine))
	}
	cached := countCached(st.TaskStats)
	if cached > 0 {
		fmt.Fprintf(m.Stdout, "  %d done at submit from the result cache (not run again)\n", cached)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tEXIT\tWORKER\tENGINE\tERROR")
	for _, t := range st.TaskStats {
		exit := "-"
		if t.ExitCode != nil {
			exit = fmt.Sprint(*t.ExitCode)
		}
		state := string(t.State)
		if c := t.CachedFrom; c != nil {
			state = fmt.Sprintf("%s (cached from job %s task %d)", state, termSafe(c.Job), c.Index)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", t.Index, state, t.Attempts, exit, termSafe(t.Worker), termSafe(t.Engine), termSafe(oneLine(t.Error)))
	}
	if err := tw.Flush(); err != nil {
		return exitError, err
	}
	if err := m.printReplicas(st.TaskStats); err != nil {
		return exitError, err
	}
	if st.Failed > 0 {
		m.printFailures(ctx, c, id, st)
	}
	return exitOK, nil
}

func (m *Main) jobResults(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job results", "job results ID --out DIR")
	cf := m.addClientFlags(fs, false)
	out := fs.String("out", "", "directory for <index>.out and <index>.err (created if missing)")
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if *out == "" {
		fs.Usage()
		return exitError, fmt.Errorf("%w: --out DIR is required", errUsage)
	}
	n, err := m.client(cf).DownloadResults(ctx, id, *out)
	if err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "wrote %d results to %s\n", n, *out)
	return exitOK, nil
}

func (m *Main) jobCancel(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job cancel", "job cancel ID")
	cf := m.addClientFlags(fs, false)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).Cancel(ctx, id); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "cancelled job %s\n", id)
	return exitOK, nil
}

func (m *Main) jobPurge(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job purge", "job purge ID")
	cf := m.addClientFlags(fs, false)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).Purge(ctx, id); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "purged job %s\n", id)
	return exitOK, nil
}

func (m *Main) jobList(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("job list", "job list [--json]")
	cf := m.addClientFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	jobs, err := m.client(cf).Jobs(ctx)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(jobs)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tDONE\tFAILED\tTOTAL\tSUBMITTED")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.ID, termSafe(j.Name), j.State, j.Done, j.Failed, j.Tasks, j.SubmittedAt.Local().Format(time.DateTime))
	}
	return exitOK, tw.Flush()
}

// oneArg parses flags and wants exactly one positional argument.
func oneArg(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", errUsage
	}
	return pos[0], nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// countCached counts the tasks the result cache answered at submit.
func countCached(ts []api.TaskStatus) int {
	n := 0
	for _, t := range ts {
		if t.CachedFrom != nil {
			n++
		}
	}
	return n
}
