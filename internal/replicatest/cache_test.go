package replicatest

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/tasks"
)

// TestReplicas_ResubmitOfAReplicatedJobLeasesNothing: an R=2 job submitted
// a second time completes from the result cache: no worker leases
// anything, and every task names the task it took its result from, with
// the two agreeing results that result had.
func TestReplicas_ResubmitOfAReplicatedJobLeasesNothing(t *testing.T) {
	g := emptyGrid(t)
	var ws []*liar.Worker
	for _, id := range []string{"a", "b", "c"} {
		ws = append(ws, liar.Start(t, g, "", id, truth))
	}
	leased := func() int {
		n := 0
		for _, w := range ws {
			n += w.Stats().Leased
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := g.Client()
	spec := tinySpec(t, c, "cached", 10)
	spec.Replicas = 2
	first := wait(ctx, t, c, submit(ctx, t, c, spec))
	if first.State != tasks.JobComplete {
		t.Fatalf("first submit: %s, want complete", first.State)
	}
	// A worker counts a lease as it handles the answer, which may be just
	// after the leader saw the job complete (CI once read 19 of 20).
	for leased() < 2*10 {
		if ctx.Err() != nil {
			t.Fatalf("first submit: complete after %d leases, want at least 20", leased())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := leased()
	second := wait(ctx, t, c, submit(ctx, t, c, spec))
	if second.State != tasks.JobComplete {
		t.Fatalf("resubmit: %s", second.State)
	}
	if got := leased(); got != before {
		t.Fatalf("the resubmit leased %d replicas, want none", got-before)
	}
	for _, ts := range second.TaskStats {
		if cf := ts.CachedFrom; cf == nil || cf.Job != first.ID || cf.Index != ts.Index || cf.Agreed != 2 || ts.Attempts != 0 {
			t.Fatalf("task %d: cached_from %+v attempts %d, want job %s task %d with 2 agreeing", ts.Index, cf, ts.Attempts, first.ID, ts.Index)
		}
	}
}
