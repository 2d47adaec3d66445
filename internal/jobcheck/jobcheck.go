// Package jobcheck holds the checks end-to-end tests make of a job through
// the API: wait for a state, and check that every task finished exactly once
// with the stdout the test expects. In-process (testcluster) and
// multi-process (proctest) tests share it.
package jobcheck

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
)

// WaitJob polls through client until cond holds for the job's summary, and
// returns that summary; it fails the test after timeout, naming the last
// summary and error seen.
func WaitJob(t testing.TB, client *client.Client, id string, timeout time.Duration, cond func(*api.JobSummary) bool) *api.JobSummary {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *api.JobSummary
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := client.JobSummary(ctx, id) // not the tasks: cheap even for a big job
		cancel()
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: timed out after %s (last summary %+v, last error %v)", id, timeout, last, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Results wants n results in task order, task i done with stdout want(i).
func Results(t testing.TB, client *client.Client, id string, n int, want func(i int) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := client.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for i, r := range results {
		if w := want(i); r.Index != i || r.State != tasks.TaskDone || string(r.Stdout) != w {
			t.Fatalf("task %d: index %d state %s stdout %q, want done with %q", i, r.Index, r.State, r.Stdout, w)
		}
	}
}

// EveryTaskOnce is Results plus exactly n completions accepted by the
// ledger over all peers (no task counted twice after retries, failovers or
// kills): for a grid that ran this one job.
func EveryTaskOnce(t testing.TB, client *client.Client, id string, n int, want func(i int) string) {
	t.Helper()
	Results(t, client, id, n, want)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peers, err := client.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, p := range peers {
		accepted += p.Done
	}
	if accepted != n {
		t.Fatalf("the ledger accepted %d completions for %d tasks; tasks run more than once: %s", accepted, n, retried(ctx, client, id))
	}
}

// retried describes the tasks of job id that took more than one attempt
// (index, attempts, the last error), for a failure message.
func retried(ctx context.Context, c *client.Client, id string) string {
	st, err := c.Job(ctx, id)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ts := range st.TaskStats {
		if ts.Attempts > 1 || ts.Ignored > 0 {
			out = append(out, fmt.Sprintf("task %d: %d attempts, %d late reports, worker %s, last error %q %q", ts.Index, ts.Attempts, ts.Ignored, ts.Worker, ts.ErrorKind, ts.Error))
		}
	}
	if len(out) == 0 {
		return "none (a report counted twice?)"
	}
	return strings.Join(out, "; ")
}
