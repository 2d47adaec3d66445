package devgrid

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// TestGrid_SameJobGivesTheSameBytesOnEveryWorkerAndEngine submits the same
// job (a Go guest printing the clock, a sleep's elapsed time, math/rand,
// crypto/rand, map order, args and env) three times: on one worker, again
// on another worker, and on another engine. Every task prints the same
// bytes each time. The job file's seed, and only it among the job's
// settings that are not content, changes the random numbers.
func TestGrid_SameJobGivesTheSameBytesOnEveryWorkerAndEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	guest, err := gowasm.Build(ctx, os.DirFS("../../wasm/testdata/guest"), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g := startGrid(t, dir, true)
	c := g.Client()
	hash := storage.Hash(guest)
	if err := c.PutBlob(ctx, hash, guest); err != nil {
		t.Fatal(err)
	}
	spec := func(name, engine string, seed uint64) *tasks.JobSpec {
		return &tasks.JobSpec{Name: name, ModuleHash: hash, Args: []string{"{index}", "of", "{count}"},
			Env: map[string]string{"MODE": "check", "LEVEL": "3"}, Tasks: 3, Timeout: time.Minute,
			Memory: 64 << 20, MaxOutput: 1 << 16, Retries: 1, Engine: engine, Seed: seed,
			NoCache: true} // each submit must run, not take the first's results
	}
	other := otherEngine()

	stop := startWorkerAt(t, g, "repro-a", filepath.Join(dir, "a"))
	first := runJob(t, c, spec("repro", tasks.EngineWazero, 0), "repro-a")
	stop()
	startWorkerAt(t, g, "repro-b", filepath.Join(dir, "b"))
	again := runJob(t, c, spec("repro", tasks.EngineWazero, 0), "repro-b")
	onOther := runJob(t, c, spec("repro", other, 0), "repro-b")
	reseeded := runJob(t, c, spec("repro", tasks.EngineWazero, 7), "repro-b")

	for i := range first {
		for name, got := range map[string][]byte{"on another worker": again[i], "on " + other: onOther[i]} {
			if !bytes.Equal(got, first[i]) {
				t.Errorf("task %d %s printed\n%s\nfirst\n%s", i, name, got, first[i])
			}
		}
		if line := fmt.Sprintf(`args=["repro" "%d" "of" "3"]`, i); !bytes.Contains(first[i], []byte(line)) {
			t.Errorf("task %d did not print %s:\n%s", i, line, first[i])
		}
		if !bytes.Contains(first[i], []byte(`env=["LEVEL=3" "MODE=check"]`)) {
			t.Errorf("task %d did not print its env:\n%s", i, first[i])
		}
		if lineOf(reseeded[i], "rand=") == lineOf(first[i], "rand=") || lineOf(reseeded[i], "crypto=") == lineOf(first[i], "crypto=") {
			t.Errorf("task %d: seed = 7 gave the default seed's random numbers:\n%s", i, reseeded[i])
		}
	}
	if lineOf(first[0], "rand=") == lineOf(first[1], "rand=") {
		t.Errorf("tasks 0 and 1 drew the same random numbers: %s", lineOf(first[0], "rand="))
	}
}

// otherEngine is the fastest engine built in that is not wazero, or wazero
// in a build without cgo (the test then checks wazero against itself).
func otherEngine() string {
	for _, e := range []string{tasks.EngineWasmtime, tasks.EngineWasmer} {
		if slices.Contains(wasm.AvailableEngines(), e) {
			return e
		}
	}
	return tasks.EngineWazero
}

// startWorkerAt runs a worker with its own credential, data dir and
// executor pool; the returned func drains it (the test's cleanup does too).
func startWorkerAt(t *testing.T, g *Grid, id, dir string) (stop func()) {
	t.Helper()
	return startWorkerOffering(t, g, id, dir, nil)
}

// startWorkerOffering is startWorkerAt for a worker offering only engines
// (nil: every engine the binary has).
func startWorkerOffering(t *testing.T, g *Grid, id, dir string, engines []string) (stop func()) {
	t.Helper()
	// Enrolling and starting a worker (its executors included) took over
	// 30 s once under -race at load 14.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, cert, err := g.peerClient(ctx, dir, id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(ctx, worker.Config{ID: id, Client: c, DataDir: dir, Cores: 2, ShardTLS: cert, Engines: engines,
		StorageBind: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(runCtx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			stopRun()
			<-done
			w.Close()
		}
	}
	t.Cleanup(stop)
	return stop
}

// runJob submits spec, waits for it to complete, checks that worker ran
// every task, and returns each task's stdout.
func runJob(t *testing.T, c *client.Client, spec *tasks.JobSpec, worker string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := c.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != tasks.JobComplete {
		t.Fatalf("job %s on %s: %+v", id, spec.Engine, sum)
	}
	results, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(results))
	for i, r := range results {
		if r.Worker != worker {
			t.Fatalf("task %d of job %s ran on %q, want %s", i, id, r.Worker, worker)
		}
		if spec.Engine != tasks.EngineAuto && r.Engine != spec.Engine {
			t.Fatalf("task %d of job %s ran on engine %q, want %s", i, id, r.Engine, spec.Engine)
		}
		out[i] = r.Stdout
	}
	return out
}

func lineOf(out []byte, prefix string) string {
	for line := range bytes.Lines(out) {
		if bytes.HasPrefix(line, []byte(prefix)) {
			return string(bytes.TrimSpace(line))
		}
	}
	return ""
}
