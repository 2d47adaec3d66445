package devgrid

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// countingRunner runs tasks on a real executor pool and counts the runs.
type countingRunner struct {
	pool *wasm.Pool
	runs atomic.Int64
}

func (r *countingRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	r.runs.Add(1)
	return r.pool.Run(ctx, req)
}

// TestGrid_ResubmitIsAnsweredByTheResultCache: a job submitted again
// through the API completes with nothing leased or run (the worker's run
// count, its accepted completions and every task's attempts stay put) and
// byte-identical results; with one input byte changed, exactly that task
// runs again.
func TestGrid_ResubmitIsAnsweredByTheResultCache(t *testing.T) {
	dir := t.TempDir()
	pool, err := wasm.NewPool(context.Background(), wasm.PoolConfig{Size: 1,
		ModuleDir: wasm.ModuleDir(filepath.Join(dir, "worker", "modules")), CacheDir: filepath.Join(dir, "compile")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	runner := &countingRunner{pool: pool}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Start(context.Background(), Config{DataDir: dir, Cores: 1, Worker: runner, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := g.Client()

	const n = 20
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	var inputs []tasks.Input
	for i := range n {
		inputs = append(inputs, putInput(t, c, fmt.Sprintf("input %d", i)))
	}
	spec := tasks.JobSpec{Name: "echo", ModuleHash: storage.Hash(mod), Args: []string{"task", "{index}", "of", "{count}"},
		Tasks: n, Inputs: inputs, Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}

	first := submitAndWait(ctx, t, c, &spec)
	if got := runner.runs.Load(); got != n {
		t.Fatalf("first submit ran %d tasks, want %d", got, n)
	}
	second := submitAndWait(ctx, t, c, &spec)
	if got := runner.runs.Load(); got != n {
		t.Fatalf("the resubmit ran %d tasks, want none", got-n)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if done := workerDone(peers, "dev-worker"); done != n {
		t.Fatalf("the worker has %d accepted completions, want %d: the resubmit's tasks were leased", done, n)
	}
	want, got := results(ctx, t, c, first), results(ctx, t, c, second)
	for i := range n {
		w, r := want[i], got[i]
		if !bytes.Equal(w.Stdout, r.Stdout) || !bytes.Equal(w.Stderr, r.Stderr) || string(r.Stdout) != fmt.Sprintf("task %d of %d\n", i, n) {
			t.Fatalf("task %d: cached stdout %q stderr %q, first run %q %q", i, r.Stdout, r.Stderr, w.Stdout, w.Stderr)
		}
		if r.Attempts != 0 || r.CachedFrom == nil || *r.CachedFrom != (api.CachedFrom{Job: first, Index: i, Agreed: 1}) {
			t.Fatalf("task %d: attempts %d cached_from %+v, want 0 and %s/%d", i, r.Attempts, r.CachedFrom, first, i)
		}
	}

	changed := spec
	changed.Inputs = append([]tasks.Input(nil), spec.Inputs...)
	changed.Inputs[7] = putInput(t, c, "input 7!") // one byte more
	third := submitAndWait(ctx, t, c, &changed)
	if got := runner.runs.Load(); got != n+1 {
		t.Fatalf("with one input changed %d tasks ran, want 1", got-n)
	}
	for i, r := range results(ctx, t, c, third) {
		if ran := r.CachedFrom == nil; ran != (i == 7) || string(r.Stdout) != fmt.Sprintf("task %d of %d\n", i, n) {
			t.Fatalf("task %d: ran %v (cached_from %+v) stdout %q; want only task 7 run", i, ran, r.CachedFrom, r.Stdout)
		}
	}
}

func putInput(t *testing.T, c *client.Client, text string) tasks.Input {
	t.Helper()
	data := []byte(text)
	if err := c.PutBlob(context.Background(), storage.Hash(data), data); err != nil {
		t.Fatal(err)
	}
	return tasks.Input{Name: text, Hash: storage.Hash(data), Size: int64(len(data))}
}

func submitAndWait(ctx context.Context, t *testing.T, c *client.Client, spec *tasks.JobSpec) string {
	t.Helper()
	id, err := c.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.WaitJob(ctx, id, 10*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job %s: %+v (%v)", id, sum, err)
	}
	return id
}

func results(ctx context.Context, t *testing.T, c *client.Client, id string) []api.TaskResult {
	t.Helper()
	rs, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
