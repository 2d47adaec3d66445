package worker_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// gateRunner blocks every task until the gate opens, counting starts.
type gateRunner struct {
	gate    chan struct{}
	mu      sync.Mutex
	started int
}

func (g *gateRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	g.mu.Lock()
	g.started++
	g.mu.Unlock()
	select {
	case <-g.gate:
		return &wasm.Result{Stdout: []byte("ok")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gateRunner) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

// TestWorker_DrainFinishesRunningAndHandsBackTheRest: on stop, a worker lets
// its running tasks finish and hands back the ones it had not started, which
// are queued again at once (the worker TTL here is a minute, so nothing
// waits for it).
func TestWorker_DrainFinishesRunningAndHandsBackTheRest(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := devgrid.Start(context.Background(), devgrid.Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(context.Background(), storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(context.Background(), &tasks.JobSpec{Name: "drain", ModuleHash: storage.Hash(mod), Tasks: 6,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 64})
	if err != nil {
		t.Fatal(err)
	}
	runner := &gateRunner{gate: make(chan struct{})}
	w, err := worker.New(context.Background(), worker.Config{ID: "w1", Client: c, DataDir: t.TempDir(), Cores: 2, Prefetch: 4,
		Pool: runner, DrainGrace: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()

	testcluster.Eventually(t, 10*time.Second, "2 tasks running and 4 prefetched", func() bool {
		st, err := c.Job(context.Background(), id)
		return err == nil && st.Leased == 6 && runner.count() == 2
	})
	cancel() // SIGTERM
	testcluster.Eventually(t, 10*time.Second, "the 4 unstarted tasks handed back", func() bool {
		st, err := c.Job(context.Background(), id)
		return err == nil && st.Queued == 4 && st.Leased == 2
	})
	close(runner.gate) // the running ones finish within the grace period
	<-done
	st, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 2 || st.Queued != 4 {
		t.Fatalf("after drain: %+v", st.JobSummary)
	}
	for _, task := range st.TaskStats {
		if task.State == tasks.TaskQueued && task.Attempts != 0 {
			t.Fatalf("a handed-back task was charged an attempt: %+v", task)
		}
	}
	if runner.count() != 2 {
		t.Fatalf("%d tasks started during the drain, want only the 2 running before it", runner.count())
	}
}
