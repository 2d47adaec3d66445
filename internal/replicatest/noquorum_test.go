package replicatest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/tasks"
)

// TestReplicas_NoQuorumListsEveryHashAndWorker: a task whose output depends
// on the worker that runs it (each of four workers stamps its own name into
// stdout) never gets two agreeing hashes: with R=2, Q=2, max_replicas=4 it
// fails after the fourth vote as no_quorum, and its error and its replicas
// name every hash seen and the worker that gave it.
func TestReplicas_NoQuorumListsEveryHashAndWorker(t *testing.T) {
	g := emptyGrid(t)
	workers := []string{"w-amber", "w-blue", "w-cyan", "w-dune"}
	for _, id := range workers {
		liar.Start(t, g, "", id, func(a *api.Assignment) []byte { return fmt.Appendf(nil, "%s says %d\n", id, a.Index) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := g.Client()
	spec := tinySpec(t, c, "drift", 2)
	spec.Replicas, spec.Quorum, spec.MaxReplicas = 2, 2, 4
	st := wait(ctx, t, c, submit(ctx, t, c, spec))
	if st.State != tasks.JobFailed || st.Failed != 2 {
		t.Fatalf("job %s: %s with %d failed, want failed with both tasks no_quorum", st.ID, st.State, st.Failed)
	}
	for _, ts := range st.TaskStats {
		if ts.ErrorKind != tasks.ErrNoQuorum {
			t.Fatalf("task %d: %s (%s), want %s", ts.Index, ts.ErrorKind, ts.Error, tasks.ErrNoQuorum)
		}
		if len(ts.Replicas) != 4 {
			t.Fatalf("task %d: %d replicas %+v, want max_replicas = 4", ts.Index, len(ts.Replicas), ts.Replicas)
		}
		for _, id := range workers {
			want := hashOf(fmt.Appendf(nil, "%s says %d\n", id, ts.Index))
			if !strings.Contains(ts.Error, id) || !strings.Contains(ts.Error, want[:8]) {
				t.Fatalf("task %d: no_quorum error %q does not name %s with its hash %s", ts.Index, ts.Error, id, want[:8])
			}
			if !hasReplica(ts.Replicas, id, want) {
				t.Fatalf("task %d: replicas %+v lack %s with hash %s", ts.Index, ts.Replicas, id, want)
			}
		}
	}
}

func hasReplica(rs []api.ReplicaOutcome, worker, hash string) bool {
	for _, r := range rs {
		if r.Worker == worker && r.Hash == hash {
			return true
		}
	}
	return false
}
