package wasm

import (
	"bytes"
	"errors"
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
			for _, engine := range AvailableEngines() {
				r := *req
				r.Engine = engine
				res, err := pool.Run(testCtx(t), &r)
				if res == nil {
					t.Fatalf("%s: no result, err %v", engine, err)
				}
				if res.Engine != engine {
					t.Fatalf("ran on %q, asked for %q", res.Engine, engine)
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

// Acceptance: a task past its deadline on wasmtime is stopped by its epoch,
// not by killing its executor: the same process runs the next task.
func TestPool_WasmtimeLoopIsInterruptedAtTimeoutAndExecutorKept(t *testing.T) {
	needEngine(t, EngineWasmtime)
	loop := put(t, wasmtest.WriteThenLoop("started\n", "still going\n"))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	p, err := NewPool(testCtx(t), PoolConfig{Size: 1, CacheDir: testCacheDir, ModuleDir: testModules, Engines: []string{EngineWasmtime}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
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
	if after := p.pids(); len(after) != 1 || after[0] != before[0] {
		t.Fatalf("executors before %v, after %v: want the same one kept", before, after)
	}
}

// Acceptance: a task past its deadline on wasmer is stopped, its executor
// replaced, and the next task runs normally.
func TestPool_WasmerLoopIsStoppedAtTimeoutAndNextTaskRuns(t *testing.T) {
	needEngine(t, EngineWasmer)
	loop := put(t, wasmtest.WriteThenLoop("started\n", "still going\n"))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	p, err := NewPool(testCtx(t), PoolConfig{Size: 1, CacheDir: testCacheDir, ModuleDir: testModules, Engines: []string{EngineWasmer}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
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
	p, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules, CacheDir: testCacheDir, Engines: []string{EngineWazero}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
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

// Acceptance: auto tries each engine, then keeps the clearly faster one
// (timings injected, not measured).
func TestEngineChooser_AutoKeepsTheFasterEngine(t *testing.T) {
	for _, tc := range []struct {
		name string
		took map[string]time.Duration
		want string
	}{
		{"wasmer faster (C kernel)", map[string]time.Duration{EngineWazero: 290 * time.Millisecond, EngineWasmer: 125 * time.Millisecond}, EngineWasmer},
		{"wazero faster (Go guest)", map[string]time.Duration{EngineWazero: 250 * time.Millisecond, EngineWasmer: 360 * time.Millisecond}, EngineWazero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewEngineChooser([]string{EngineWazero, EngineWasmer}, 2)
			tried := map[string]int{}
			for range 4 { // the trials: each engine twice, alternating
				e := c.Choose("mod", 0)
				tried[e]++
				if _, done := c.Chosen("mod"); done && tried[e] < 2 {
					t.Fatal("chose before measuring")
				}
				c.Observe("mod", e, tc.took[e])
			}
			if tried[EngineWazero] != 2 || tried[EngineWasmer] != 2 {
				t.Fatalf("trials: %v, want each engine twice", tried)
			}
			for range 10 {
				if e := c.Choose("mod", 0); e != tc.want {
					t.Fatalf("after the trials chose %s, want %s", e, tc.want)
				}
			}
			if e, ok := c.Chosen("mod"); !ok || e != tc.want {
				t.Fatalf("Chosen = %s, %v", e, ok)
			}
			if e := c.Choose("other module", 0); e != EngineWazero {
				t.Fatalf("a new module starts its trials with %s, want wazero", e)
			}
		})
	}
}

// Through a Pool, auto reports each task's engine and ends up with one.
func TestPool_AutoRunsTrialsOnEveryEngineThenSettles(t *testing.T) {
	mod := put(t, wasmtest.Hello("auto\n", "", 0))
	p, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules, CacheDir: testCacheDir, AutoTrials: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.chooser.TrialWaitPerMiB = 0 // the module is tiny; its runs would take long to add up
	seen := map[string]bool{}
	for range len(p.Engines()) + 3 {
		res, err := p.Run(testCtx(t), &Request{ModuleHash: mod, Engine: EngineAuto})
		if err != nil || string(res.Stdout) != "auto\n" {
			t.Fatalf("got %+v, %v", res, err)
		}
		seen[res.Engine] = true
	}
	if len(seen) != len(p.Engines()) {
		t.Fatalf("auto ran on %v, want every engine of %v during the trials", seen, p.Engines())
	}
	if _, ok := p.chooser.Chosen(mod); !ok {
		t.Fatal("auto has not settled after its trials")
	}
}

// While an engine's trial is in flight (compiling, maybe for seconds),
// other tasks of the module do not wait for it: they go to another engine.
func TestEngineChooser_OneTrialInFlightPerEngine(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmer}, 2)
	if a, b := c.Choose("m", 0), c.Choose("m", 0); a != EngineWazero || b != EngineWasmer {
		t.Fatalf("first two tasks went to %s, %s: want one trial on each", a, b)
	}
	if e := c.Choose("m", 0); e != EngineWazero { // both in flight, nothing measured
		t.Fatalf("with both trials in flight chose %s, want the first engine", e)
	}
	c.Observe("m", EngineWazero, 100*time.Millisecond)
	c.Observe("m", EngineWazero, 100*time.Millisecond) // the untracked third task
	if e := c.Choose("m", 0); e != EngineWazero {
		t.Fatalf("chose %s, want wazero's second trial", e)
	}
	if e := c.Choose("m", 0); e != EngineWazero { // wasmer's first trial still in flight
		t.Fatalf("chose %s while wasmer's trial is in flight, want wazero (the best measured)", e)
	}
	c.Observe("m", EngineWasmer, 40*time.Millisecond)
	if e := c.Choose("m", 0); e != EngineWasmer {
		t.Fatalf("chose %s, want wasmer's second trial", e)
	}
	c.Observe("m", EngineWasmer, 45*time.Millisecond)
	if e, ok := c.Chosen("m"); !ok || e != EngineWasmer {
		t.Fatalf("Chosen = %s, %v; want wasmer", e, ok)
	}
}

// An engine whose compile is slow for a big module is tried only once the
// module's tasks have run long enough to pay for it.
func TestEngineChooser_BigModuleIsTriedOnlyAfterEnoughWork(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmer}, 1)
	c.TrialWaitPerMiB = 2 * time.Second
	const size = 3 << 20 // 6 s of work before wasmer is tried
	for range 11 {
		if e := c.Choose("go", size); e != EngineWazero {
			t.Fatalf("tried %s before the module did enough work", e)
		}
		c.Observe("go", EngineWazero, 500*time.Millisecond)
	}
	c.Observe("go", EngineWazero, 500*time.Millisecond) // 6 s now
	if e := c.Choose("go", size); e != EngineWasmer {
		t.Fatalf("after 6 s of work chose %s, want wasmer's trial", e)
	}
	if e := c.Choose("small", 30<<10); e != EngineWazero {
		t.Fatal("a small module starts on wazero")
	}
	c.Observe("small", EngineWazero, 100*time.Millisecond)
	if e := c.Choose("small", 30<<10); e != EngineWasmer {
		t.Fatalf("a small module: chose %s after 100 ms of work, want wasmer's trial", e)
	}
}
