package devgrid

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// TestGrid_AutoEngineIsLearnedOnceForTheGrid (issue 15): two workers run a
// tiny module's first auto job, each trying engines for itself; the leader
// learns from both and commits the module's engine. The next job runs on
// it on both workers (at least 95% of its tasks; in fact every one, since
// every assignment names it), and a worker that joins later runs every
// task on it from its first, with no trials of its own: left to itself it
// would start on wasmtime and try wazero on tiny tasks, so one engine for
// all its tasks is the grid's doing.
func TestGrid_AutoEngineIsLearnedOnceForTheGrid(t *testing.T) {
	if len(wasm.AvailableEngines()) < 2 {
		t.Skip("one engine in this build (cgo off): nothing to choose")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g := startGrid(t, dir, true)
	c := g.Client()
	mod := examples.Tiny()
	hash := storage.Hash(mod)
	if err := c.PutBlob(ctx, hash, mod); err != nil {
		t.Fatal(err)
	}
	stopA := startWorkerAt(t, g, "auto-a", filepath.Join(dir, "a"))
	stopB := startWorkerAt(t, g, "auto-b", filepath.Join(dir, "b"))

	var chosen string
	testcluster.Eventually(t, 3*time.Minute, "the grid settles on an engine for the module", func() bool {
		chosen = gridEngineOf(ctx, t, c, runAutoJob(ctx, t, c, hash, 100))
		return chosen != ""
	})
	t.Logf("grid engine for the tiny module: %s", chosen)

	id := runAutoJob(ctx, t, c, hash, 200)
	// The last reports of the first job may still have moved the choice
	// (a report is committed before the leader learns from it): count on
	// the engine the grid has now.
	chosen = gridEngineOf(ctx, t, c, id)
	on, byWorker := engineShare(ctx, t, c, id, chosen)
	t.Logf("after the decision: %d of 200 tasks on %s; by worker %v", on, chosen, byWorker)
	if on < 190 {
		t.Fatalf("%d of 200 tasks after the decision ran on %s, want at least 95%%", on, chosen)
	}

	stopA()
	stopB()
	startWorkerAt(t, g, "auto-late", filepath.Join(dir, "late"))
	id = runAutoJob(ctx, t, c, hash, 40)
	if on, byWorker := engineShare(ctx, t, c, id, chosen); on != 40 || byWorker["auto-late"] != 40 {
		t.Fatalf("the late worker ran %d of 40 tasks on %s (by worker %v): want all, from its first", on, chosen, byWorker)
	}
}

// runAutoJob submits an auto job of n tasks of module and waits for it.
func runAutoJob(ctx context.Context, t *testing.T, c *client.Client, module string, n int) string {
	t.Helper()
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "auto", ModuleHash: module, Args: []string{"{index}"}, Tasks: n,
		Timeout: time.Minute, Memory: 16 << 20, MaxOutput: 1 << 10, Retries: 1, Engine: tasks.EngineAuto, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job %s: %+v, %v", id, sum, err)
	}
	return id
}

// engineShare counts a job's tasks that ran on engine, and every task by
// the worker that ran it.
func engineShare(ctx context.Context, t *testing.T, c *client.Client, id, engine string) (on int, byWorker map[string]int) {
	t.Helper()
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	byWorker = map[string]int{}
	for _, ts := range st.TaskStats {
		byWorker[ts.Worker]++
		if ts.Engine == engine {
			on++
		}
	}
	return on, byWorker
}

// gridEngineOf is the grid's engine for auto job id's module now.
func gridEngineOf(ctx context.Context, t *testing.T, c *client.Client, id string) string {
	t.Helper()
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.GridEngine
}
