package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/wasm"
)

// fakeBatchRunner is a fakeRunner that also runs batches, one task after
// another through the fakeRunner, recording each batch's module hashes.
// A run takes 20 us, so the worker sees tiny tasks.
type fakeBatchRunner struct {
	fakeRunner
	beforeTask func(req *wasm.Request) // if set, called before each task of a batch

	batchMu sync.Mutex
	batches [][]string // each batch's module hashes
	alone   int        // tasks run by Run, not in a batch
}

var _ BatchRunner = (*fakeBatchRunner)(nil)

func newFakeBatchRunner() *fakeBatchRunner {
	f := &fakeBatchRunner{}
	f.run = func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
		return &wasm.Result{Stdout: []byte("ok"), Engine: "fake", Duration: 20 * time.Microsecond}, nil
	}
	return f
}

func (f *fakeBatchRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	f.batchMu.Lock()
	f.alone++
	f.batchMu.Unlock()
	return f.fakeRunner.Run(ctx, req)
}

func (f *fakeBatchRunner) RunBatch(ctx context.Context, batch []wasm.BatchTask, done func(int, *wasm.Result, error)) {
	modules := make([]string, len(batch))
	for i, bt := range batch {
		modules[i] = bt.Req.ModuleHash
	}
	f.batchMu.Lock()
	f.batches = append(f.batches, modules)
	f.batchMu.Unlock()
	for i, bt := range batch {
		if f.beforeTask != nil {
			f.beforeTask(bt.Req)
		}
		if err := bt.Ctx.Err(); err != nil {
			done(i, nil, err)
			continue
		}
		res, err := f.fakeRunner.Run(bt.Ctx, bt.Req)
		done(i, res, err)
	}
}

func (f *fakeBatchRunner) recorded() (batches [][]string, alone int) {
	f.batchMu.Lock()
	defer f.batchMu.Unlock()
	return append([][]string(nil), f.batches...), f.alone
}

// otherModule is a second module the module cache takes: testModule with
// an empty custom section.
var otherModule = append(append([]byte(nil), testModule...), 0, 2, 1, 'x')

// Tiny tasks of one module go to the pool in batches, never mixing
// modules; a task with a stored input runs alone; every task is reported
// once.
func TestBatch_TinyTasksOfOneModuleRunInBatches(t *testing.T) {
	g := newFakeGrid()
	other := g.putBlob(otherModule)
	var all []api.Assignment
	for i := range 400 {
		a := task("j", i)
		if i/50%2 == 1 {
			a.ModuleHash = other
		}
		if i == 399 {
			a.InputHash = g.putBlob([]byte("stored input"))
		}
		all = append(all, a)
	}
	runner := newFakeBatchRunner()
	batches, alone := runEachOnce(t, g, runner, all)
	largest := 0
	for _, b := range batches {
		largest = max(largest, len(b))
		for _, m := range b {
			if m != b[0] {
				t.Fatalf("a batch mixes modules: %v", b)
			}
		}
	}
	if largest < 2 {
		t.Fatalf("largest batch %d tasks, want tiny tasks batched", largest)
	}
	if alone == 0 {
		t.Fatal("the task with a stored input was not run alone")
	}
	t.Logf("%d batches, the largest of %d tasks; %d tasks alone", len(batches), largest, alone)
}

// A task of a batch whose lease is gone is stopped and not reported; the
// tasks around it are.
func TestBatch_StaleTaskInABatchIsNotReported(t *testing.T) {
	g := newFakeGrid()
	runner := newFakeBatchRunner()
	w := testWorker(t, g, Config{Cores: 1, Pool: runner})
	r := newRun(w)
	r.workCtx, r.workCancel = context.WithCancel(context.Background())
	defer r.workCancel()
	batch := tasksOf("j", 5)
	stale := refOf(batch[2])
	runner.beforeTask = func(req *wasm.Request) {
		if req.Name == batch[1].Name {
			r.stopStale([]api.TaskRef{stale}) // the heartbeat says its lease is gone
		}
	}
	r.runBatch(batch)
	close(r.reports)
	var got []api.TaskRef
	for rep := range r.reports {
		if rep.ErrorKind != "" {
			t.Fatalf("report %+v: want success", rep)
		}
		got = append(got, rep.TaskRef)
	}
	want := refs(batch[0], batch[1], batch[3], batch[4])
	if !sameRefs(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	if running, _ := r.counts(); running != 0 {
		t.Fatalf("%d attempts still tracked as running after the batch", running)
	}
}

// Tasks of a few milliseconds go to the pool at least two at a time (the
// second waits in the executor's pipe instead of the executor idling while
// the worker hands it over); tasks of pipelineBelow or more go alone.
func TestBatch_TasksOfAFewMillisecondsGoTwoAtATime(t *testing.T) {
	for _, c := range []struct {
		run         time.Duration
		wantBatches bool
	}{
		{5 * time.Millisecond, true},
		{pipelineBelow, false},
	} {
		t.Run(c.run.String(), func(t *testing.T) {
			runner := newFakeBatchRunner()
			runner.run = func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
				return &wasm.Result{Stdout: []byte("ok"), Engine: "fake", Duration: c.run}, nil
			}
			batches, alone := runEachOnce(t, newFakeGrid(), runner, tasksOf("j", 60))
			largest := 0
			for _, b := range batches {
				largest = max(largest, len(b))
			}
			if got := largest >= 2; got != c.wantBatches {
				t.Fatalf("tasks of %v: largest batch %d (%d batches, %d alone), want batches of 2 or more: %v", c.run, largest, len(batches), alone, c.wantBatches)
			}
		})
	}
}

// runEachOnce queues all on g, runs a 2-core worker on runner until every
// task is reported, checks each was reported once, and returns the
// batches runner ran and the tasks it ran alone.
func runEachOnce(t *testing.T, g *fakeGrid, runner *fakeBatchRunner, all []api.Assignment) (batches [][]string, alone int) {
	t.Helper()
	g.queue(all...)
	w := testWorker(t, g, Config{Cores: 2, Pool: runner})
	run := runWorker(t, w)
	eventually(t, "every task reported", func() bool { sent, _, _ := reportsSent(g); return len(sent) >= len(all) })
	run.stop()
	sent, _, _ := reportsSent(g)
	if !sameRefs(sent, refs(all...)) {
		t.Fatalf("%d reports sent, want each of the %d tasks once", len(sent), len(all))
	}
	return runner.recorded()
}
