package wasm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// needEngine skips a test that needs an engine this build does not have
// (wasmer without cgo): the CGO_ENABLED=0 build runs the rest.
func needEngine(t testing.TB, name string) {
	t.Helper()
	if !slices.Contains(AvailableEngines(), name) {
		t.Skipf("engine %s is not in this build (AvailableEngines = %v)", name, AvailableEngines())
	}
}

func TestAvailableEngines_WazeroAlwaysWasmtimeAndWasmerWithCgo(t *testing.T) {
	got := AvailableEngines()
	if got[0] != EngineWazero {
		t.Fatalf("AvailableEngines() = %v, want wazero first", got)
	}
	if slices.Contains(got, EngineWasmer) != wasmerBuilt || slices.Contains(got, EngineWasmtime) != wasmtimeBuilt {
		t.Fatalf("AvailableEngines() = %v, wasmer built = %v, wasmtime built = %v", got, wasmerBuilt, wasmtimeBuilt)
	}
	if _, err := NewEngine(testCtx(t), "v8", EngineConfig{ModuleDir: testModules}); !errors.Is(err, ErrEngineUnavailable) {
		t.Fatalf("unknown engine: err = %v", err)
	}
}

// The same tasks give the same bytes, exit code and error on every engine:
// the hand-made modules and the Go guest (clock, sleep, random, floats, GC).
func TestEngines_SameTaskGivesIdenticalBytes(t *testing.T) {
	needEngine(t, EngineWasmer)
	in := []byte("some input\x00\xff")
	reqs := map[string]*Request{
		"hello":       {ModuleHash: put(t, wasmtest.Hello("out\n", "log\n", 0))},
		"exit 5":      {ModuleHash: put(t, wasmtest.Hello("a", "b", 5))},
		"cat":         {ModuleHash: put(t, wasmtest.Cat()), Stdin: in},
		"clock":       {ModuleHash: put(t, wasmtest.ClockRandom()), Seed: 42},
		"args":        {ModuleHash: put(t, wasmtest.EchoArgs()), Args: []string{"x", "y z"}},
		"env":         {ModuleHash: put(t, wasmtest.EchoEnv()), Env: map[string]string{"B": "2", "A": "1"}},
		"trap":        {ModuleHash: put(t, wasmtest.Trap())},
		"memory bomb": {ModuleHash: put(t, wasmtest.MemoryBomb()), Limits: Limits{MemoryBytes: 4 << 20}},
		"flood":       {ModuleHash: put(t, wasmtest.OutputFlood(1)), Limits: Limits{MaxOutput: 12345}},
		"go guest":    {ModuleHash: put(t, goGuest), Name: "guest", Args: []string{"a"}, Seed: 7},
	}
	_, pool := shared(t)
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			if name == "go guest" && testing.Short() {
				t.Skip("-short: wasmer takes seconds to compile the 2.6 MB Go guest")
			}
			t.Parallel()
			var first *Result
			var firstErr error
			for _, engine := range append(AvailableEngines(), "wasmtime-checked") {
				r := *req
				r.Engine = engine
				run := pool.Run
				if engine == "wasmtime-checked" { // wasmtime's bounds-checked code
					r.Engine, run = EngineWasmtime, checkedPoolRun
				}
				res, err := run(testCtx(t), &r)
				if res == nil {
					t.Fatalf("%s: no result, err %v", engine, err)
				}
				if res.Engine != r.Engine {
					t.Fatalf("ran on %q, asked for %q", res.Engine, r.Engine)
				}
				if first == nil {
					first, firstErr = res, err
					continue
				}
				if !bytes.Equal(res.Stdout, first.Stdout) || !bytes.Equal(res.Stderr, first.Stderr) || res.ExitCode != first.ExitCode {
					t.Errorf("%s differs from %s:\nstdout %q\nvs     %q\nstderr %q vs %q, exit %d vs %d",
						engine, first.Engine, res.Stdout, first.Stdout, res.Stderr, first.Stderr, res.ExitCode, first.ExitCode)
				}
				if KindOf(err) != KindOf(firstErr) {
					t.Errorf("%s: err %v, %s: err %v", engine, err, first.Engine, firstErr)
				}
			}
		})
	}
}

// Acceptance: a task past its deadline on wasmtime is stopped, its
// executor replaced, and the next task runs normally.
func TestPool_WasmtimeLoopIsStoppedAtTimeoutAndNextTaskRuns(t *testing.T) {
	needEngine(t, EngineWasmtime)
	loop := put(t, wasmtest.WriteThenLoop("started\n", "still going\n"))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	p := newTestPool(t, PoolConfig{Size: 1, Engines: []string{EngineWasmtime}})
	before := p.pids()
	res, err := p.Run(testCtx(t), &Request{ModuleHash: loop, Limits: Limits{Timeout: 300 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	if res == nil || string(res.Stdout) != "started\n" || string(res.Stderr) != "still going\n" || res.ExitCode != -1 {
		t.Fatalf("got %+v", res)
	}
	res, err = p.Run(testCtx(t), &Request{ModuleHash: hello})
	if err != nil || string(res.Stdout) != "next\n" || res.Engine != EngineWasmtime {
		t.Fatalf("next task: got %+v, %v", res, err)
	}
	if after := p.pids(); len(after) != 1 || after[0] == before[0] {
		t.Fatalf("executors before %v, after %v: want the looping one replaced", before, after)
	}
}

// Acceptance: a task past its deadline on wasmer is stopped, its executor
// replaced, and the next task runs normally.
func TestPool_WasmerLoopIsStoppedAtTimeoutAndNextTaskRuns(t *testing.T) {
	needEngine(t, EngineWasmer)
	loop := put(t, wasmtest.WriteThenLoop("started\n", "still going\n"))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	p := newTestPool(t, PoolConfig{Size: 1, Engines: []string{EngineWasmer}})
	before := p.pids()
	res, err := p.Run(testCtx(t), &Request{ModuleHash: loop, Limits: Limits{Timeout: 300 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	if res == nil || string(res.Stdout) != "started\n" || string(res.Stderr) != "still going\n" || res.ExitCode != -1 {
		t.Fatalf("got %+v", res)
	}
	res, err = p.Run(testCtx(t), &Request{ModuleHash: hello})
	if err != nil || string(res.Stdout) != "next\n" || res.Engine != EngineWasmer {
		t.Fatalf("next task: got %+v, %v", res, err)
	}
	if after := p.pids(); len(after) != 1 || after[0] == before[0] {
		t.Fatalf("executors before %v, after %v: want the looping one replaced", before, after)
	}
}

func TestPool_EnginesRestrictWhatItOffers(t *testing.T) {
	hello := put(t, wasmtest.Hello("hi", "", 0))
	p := newTestPool(t, PoolConfig{Size: 1, Engines: []string{EngineWazero}})
	if got := p.Engines(); !slices.Equal(got, []string{EngineWazero}) {
		t.Fatalf("Engines() = %v", got)
	}
	if _, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: EngineWasmer}); !errors.Is(err, ErrEngineUnavailable) || KindOf(err) != "" {
		t.Fatalf("wasmer on a wazero-only pool: err = %v", err)
	}
	for _, e := range []string{"", EngineAuto, EngineWazero} {
		res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: e})
		if err != nil || res.Engine != EngineWazero || string(res.Stdout) != "hi" {
			t.Fatalf("engine %q: got %+v, %v", e, res, err)
		}
	}
	if _, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules, Engines: []string{"v8"}}); !errors.Is(err, ErrEngineUnavailable) {
		t.Fatalf("unknown engine: err = %v", err)
	}
}

// Acceptance: a module's first task runs on the engine expected fastest
// for long work (wasmtime, then wasmer, whatever the order given), and long
// tasks never go to the cheap-to-start engine (timings injected).
func TestEngineChooser_FirstTaskRunsOnTheFastEngineAndLongTasksStay(t *testing.T) {
	for _, tc := range []struct {
		engines []string
		first   string
	}{
		{[]string{EngineWazero, EngineWasmtime, EngineWasmer}, EngineWasmtime},
		{[]string{EngineWasmer, EngineWazero}, EngineWasmer},
		{[]string{EngineWazero}, EngineWazero},
	} {
		c := NewEngineChooser(tc.engines, 2)
		if e := c.Choose("one-task job", 30<<10); e != tc.first {
			t.Fatalf("engines %v: first task on %s, want %s", tc.engines, e, tc.first)
		}
	}
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	counts := map[string]int{}
	for range 100 {
		e := c.Choose("kernel", 30<<10)
		counts[e]++
		c.Observe("kernel", e, 300*time.Millisecond)
	}
	if counts[EngineWasmtime] != 100 {
		t.Fatalf("300 ms tasks ran on %v, want all on wasmtime", counts)
	}
	if e, ok := c.Chosen("kernel", 30<<10); !ok || e != EngineWasmtime {
		t.Fatalf("Chosen = %s, %v", e, ok)
	}
}

// Acceptance: tiny tasks move to the cheap-to-start engine once it
// measures faster, and stay there.
func TestEngineChooser_TinyTasksMoveToTheCheapEngine(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	took := map[string]time.Duration{EngineWasmtime: 400 * time.Microsecond, EngineWazero: 60 * time.Microsecond}
	var seq []string
	for range 6 {
		e := c.Choose("tiny", 1<<10)
		seq = append(seq, e)
		c.Observe("tiny", e, took[e])
	}
	// One trial on wasmtime shows the task is tiny; then the trials alternate.
	want := []string{EngineWasmtime, EngineWazero, EngineWasmtime, EngineWazero, EngineWazero, EngineWazero}
	if !slices.Equal(seq, want) {
		t.Fatalf("engines %v, want %v", seq, want)
	}
	if e, ok := c.Chosen("tiny", 1<<10); !ok || e != EngineWazero {
		t.Fatalf("Chosen = %s, %v", e, ok)
	}
}

// Acceptance: with noisy timings, once one engine is measurably faster at
// least 95% of the remaining tasks run on it.
func TestEngineChooser_ConvergesOnTheFasterEngine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		mean map[string]time.Duration
		want string
	}{
		{"C kernel: wasmtime", map[string]time.Duration{EngineWasmtime: 120 * time.Millisecond, EngineWasmer: 140 * time.Millisecond, EngineWazero: 280 * time.Millisecond}, EngineWasmtime},
		{"Go kernel: wasmer", map[string]time.Duration{EngineWasmtime: 150 * time.Millisecond, EngineWasmer: 110 * time.Millisecond, EngineWazero: 300 * time.Millisecond}, EngineWasmer},
		{"tiny: wazero", map[string]time.Duration{EngineWasmtime: 900 * time.Microsecond, EngineWasmer: 1200 * time.Microsecond, EngineWazero: 500 * time.Microsecond}, EngineWazero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewEngineChooser([]string{EngineWazero, EngineWasmtime, EngineWasmer}, 2)
			settled, on := -1, 0
			const tasks = 1000
			for i := range tasks {
				e := c.Choose("m", 30<<10)
				noise := 0.9 + 0.2*rng.Float64() // +-10%
				c.Observe("m", e, time.Duration(float64(tc.mean[e])*noise))
				if settled < 0 {
					if _, ok := c.Chosen("m", 30<<10); ok {
						settled = i
					}
				} else if e == tc.want {
					on++
				}
			}
			if settled < 0 || settled > 20 {
				t.Fatalf("settled after %d tasks", settled)
			}
			if share := float64(on) / float64(tasks-1-settled); share < 0.95 {
				t.Fatalf("%.1f%% of the tasks after settling ran on %s, want >= 95%%", 100*share, tc.want)
			}
		})
	}
}

// Through a Pool, auto reports each task's engine and ends up with one,
// trying the engines auto chooses among and no other (wasmer, where
// wasmtime is built, only runs jobs that name it).
func TestPool_AutoRunsTrialsOnEveryAutoEngineThenSettles(t *testing.T) {
	mod := put(t, wasmtest.Hello("auto\n", "", 0))
	p := newTestPool(t, PoolConfig{Size: 1, AutoTrials: 1})
	p.chooser.TrialWaitPerMiB = 0  // the module is tiny; its runs would take long to add up
	p.chooser.TinyTask = time.Hour // every run counts as tiny, however slow the machine (-race)
	p.chooser.TinyTrials = 0       // AutoTrials for tiny runs too
	p.warmUp = 0                   // only an executor's first run of each engine is cold
	auto := autoEngines(p.Engines())
	seen := map[string]bool{}
	for range 2*len(p.Engines()) + 3 { // each engine: a cold run, its trial
		res, err := p.Run(testCtx(t), &Request{ModuleHash: mod, Engine: EngineAuto})
		if err != nil || string(res.Stdout) != "auto\n" {
			t.Fatalf("got %+v, %v", res, err)
		}
		seen[res.Engine] = true
	}
	if len(seen) != len(auto) || !seen[auto[0]] || !seen[auto[len(auto)-1]] {
		t.Fatalf("auto ran on %v, want each of %v (of %v) during the trials", seen, auto, p.Engines())
	}
	if _, ok := p.chooser.Chosen(mod, 0); !ok {
		t.Fatal("auto has not settled after its trials")
	}
}

// While an engine's trial is in flight (compiling, maybe for seconds),
// other tasks of the module do not wait for it: they go to the best
// engine measured so far.
func TestEngineChooser_OneTrialInFlightPerEngine(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	if a, b := c.Choose("m", 0), c.Choose("m", 0); a != EngineWasmtime || b != EngineWasmtime {
		t.Fatalf("first two tasks went to %s, %s: want the fast engine (its trial in flight, nothing else measured)", a, b)
	}
	c.Observe("m", EngineWasmtime, time.Millisecond) // tiny: wazero is worth a trial
	c.Observe("m", EngineWasmtime, time.Millisecond)
	if e := c.Choose("m", 0); e != EngineWazero {
		t.Fatalf("chose %s, want wazero's first trial", e)
	}
	if e := c.Choose("m", 0); e != EngineWasmtime { // wazero's trial in flight
		t.Fatalf("chose %s while wazero's trial is in flight, want wasmtime (the best measured)", e)
	}
	c.Observe("m", EngineWazero, 200*time.Microsecond)
	c.Observe("m", EngineWasmtime, time.Millisecond)
	if e := c.Choose("m", 0); e != EngineWazero {
		t.Fatalf("chose %s, want wazero's second trial", e)
	}
	c.Observe("m", EngineWazero, 300*time.Microsecond)
	if e, ok := c.Chosen("m", 0); !ok || e != EngineWazero {
		t.Fatalf("Chosen = %s, %v; want wazero", e, ok)
	}
}

// An engine whose compile is slow for a big module is tried only once the
// module's tasks have run long enough to pay for it.
func TestEngineChooser_BigModuleIsTriedOnlyAfterEnoughWork(t *testing.T) {
	c := NewEngineChooser([]string{EngineWasmtime, EngineWasmer}, 1)
	c.TrialWaitPerMiB = 2 * time.Second
	const size = 3 << 20 // 6 s of work before wasmer is tried
	for range 11 {
		if e := c.Choose("go", size); e != EngineWasmtime {
			t.Fatalf("tried %s before the module did enough work", e)
		}
		c.Observe("go", EngineWasmtime, 500*time.Millisecond)
	}
	c.Observe("go", EngineWasmtime, 500*time.Millisecond) // 6 s now
	if e := c.Choose("go", size); e != EngineWasmer {
		t.Fatalf("after 6 s of work chose %s, want wasmer's trial", e)
	}
	if e := c.Choose("small", 30<<10); e != EngineWasmtime {
		t.Fatal("a small module starts on wasmtime")
	}
	c.Observe("small", EngineWasmtime, 100*time.Millisecond)
	if e := c.Choose("small", 30<<10); e != EngineWasmer {
		t.Fatalf("a small module: chose %s after 100 ms of work, want wasmer's trial", e)
	}
}

// Issue 13: a module with no WASI imports failed on wasmer as a worker
// error. The contract on every engine: a command without imports runs (it
// only cannot write anything), and a module without _start, imports or
// not, is invalid_module.
func TestEngines_ModuleWithoutImportsRunsWithoutStartIsInvalid(t *testing.T) {
	noImports := wasmtest.NewModule()
	noImports.Memory(1, wasmtest.NoMax)
	noImports.Export("_start", noImports.Func(nil, nil, nil, wasmtest.Code{}.I32Const(1).MemoryGrow().Drop()))
	bare := wasmtest.NewModule() // no memory, no imports
	bare.Export("_start", bare.Func(nil, nil, nil, nil))
	noStart := wasmtest.NewModule()
	noStart.Export("main", noStart.Func(nil, nil, nil, nil))
	runs := []string{put(t, noImports.Bytes()), put(t, bare.Bytes())}
	invalid := put(t, noStart.Bytes())
	eachRunner(t, func(t *testing.T, r runner) {
		for _, h := range runs {
			res, err := r.run(testCtx(t), &Request{ModuleHash: h})
			if err != nil || res.ExitCode != 0 || len(res.Stdout) != 0 {
				t.Fatalf("module without imports: got %+v, %v", res, err)
			}
		}
		_, err := r.run(testCtx(t), &Request{ModuleHash: invalid})
		wantRefusedNaming(t, err, "no _start")
	})
}

// The grid's chooser (Learner, MinReporters 2) settles only once runs of
// two distinct reporters are in: one worker's word decides nothing.
func TestEngineChooser_LearnerNeedsTwoReporters(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	c.Learner, c.MinReporters = true, 2
	for range 10 {
		c.ObserveFrom("m", EngineWasmtime, "w1", 300*time.Millisecond)
	}
	if e, ok := c.Chosen("m", 30<<10); ok {
		t.Fatalf("settled on %s from one worker's reports", e)
	}
	c.ObserveFrom("m", EngineWasmtime, "w2", 310*time.Millisecond)
	if e, ok := c.Chosen("m", 30<<10); !ok || e != EngineWasmtime {
		t.Fatalf("Chosen = %s, %v after a second worker's report; want wasmtime", e, ok)
	}
}

// A Learner waits for an engine whose compile must pay off only once
// someone tried it: the sum of every worker's runs would otherwise make it
// wait for trials no worker gives. The cheapest-to-start engine is waited
// for as in a worker's chooser (tiny runs).
func TestEngineChooser_LearnerWaitsOnlyForEnginesSomeoneTried(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime, EngineWasmer}, 2)
	c.Learner, c.TrialWaitPerMiB = true, 0 // a worker's chooser would now want wasmer's trials
	c.ObserveFrom("m", EngineWasmtime, "w1", 300*time.Millisecond)
	c.ObserveFrom("m", EngineWasmtime, "w2", 300*time.Millisecond)
	if e, ok := c.Chosen("m", 3<<20); !ok || e != EngineWasmtime {
		t.Fatalf("Chosen = %s, %v; want wasmtime (wasmer untried, runs not tiny)", e, ok)
	}
	c.ObserveFrom("m", EngineWasmer, "w1", 200*time.Millisecond)
	if e, ok := c.Chosen("m", 3<<20); ok {
		t.Fatalf("settled on %s with one of wasmer's two trials in", e)
	}
	c.ObserveFrom("m", EngineWasmer, "w1", 210*time.Millisecond)
	if e, ok := c.Chosen("m", 3<<20); !ok || e != EngineWasmer {
		t.Fatalf("Chosen = %s, %v; want wasmer, measured faster", e, ok)
	}

	tiny := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	tiny.Learner = true
	tiny.ObserveFrom("t", EngineWasmtime, "w1", 400*time.Microsecond)
	tiny.ObserveFrom("t", EngineWasmtime, "w2", 400*time.Microsecond)
	if e, ok := tiny.Chosen("t", 1<<10); ok {
		t.Fatalf("settled on %s before the cheap engine's trials of a tiny module", e)
	}
	tiny.ObserveFrom("t", EngineWazero, "w1", 60*time.Microsecond)
	tiny.ObserveFrom("t", EngineWazero, "w2", 70*time.Microsecond)
	if e, ok := tiny.Chosen("t", 1<<10); !ok || e != EngineWazero {
		t.Fatalf("Chosen = %s, %v; want wazero", e, ok)
	}
	tiny.ObserveFrom("t", "v8", "w1", time.Nanosecond) // not an engine it knows: ignored
	if e, _ := tiny.Chosen("t", 1<<10); e != EngineWazero {
		t.Fatalf("an unknown engine's report moved the choice to %s", e)
	}
}

// auto chooses between the engine fastest for long work and the one
// cheapest to start; a third compiled engine runs only jobs that name it.
func TestAutoEngines_FastestForLongWorkAndCheapestToStart(t *testing.T) {
	for _, tc := range []struct{ offered, want []string }{
		{[]string{EngineWazero, EngineWasmtime, EngineWasmer}, []string{EngineWasmtime, EngineWazero}},
		{[]string{EngineWasmer, EngineWazero}, []string{EngineWasmer, EngineWazero}},
		{[]string{EngineWasmtime, EngineWasmer}, []string{EngineWasmtime}},
		{[]string{EngineWazero}, []string{EngineWazero}},
	} {
		if got := autoEngines(tc.offered); !slices.Equal(got, tc.want) {
			t.Errorf("autoEngines(%v) = %v, want %v", tc.offered, got, tc.want)
		}
	}
}
