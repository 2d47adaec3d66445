package wasm

import (
	"runtime"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// A run the pool discards (an executor still warming up) is no trial:
// the trial is handed out again and its time is not compared.
func TestEngineChooser_DiscardedRunIsTriedAgain(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 1)
	if e := c.Choose("m", 0); e != EngineWasmtime {
		t.Fatalf("first task on %s, want wasmtime", e)
	}
	c.Discard("m", EngineWasmtime) // cold: 2.3 ms, would say the task is not tiny
	if e := c.Choose("m", 0); e != EngineWasmtime {
		t.Fatalf("after a discarded run: %s, want wasmtime's trial again", e)
	}
	c.Observe("m", EngineWasmtime, 30*time.Microsecond)
	if e := c.Choose("m", 0); e != EngineWazero {
		t.Fatalf("after wasmtime's warm trial: %s, want wazero's trial (the task is tiny)", e)
	}
	c.Discard("m", EngineWazero)
	if _, ok := c.Chosen("m", 0); ok {
		t.Fatal("settled on a discarded run")
	}
	if e := c.Choose("m", 0); e != EngineWazero {
		t.Fatalf("after wazero's discarded run: %s, want its trial again", e)
	}
	c.Observe("m", EngineWazero, 10*time.Microsecond)
	if e, ok := c.Chosen("m", 0); !ok || e != EngineWazero {
		t.Fatalf("Chosen = %s, %v; want wazero", e, ok)
	}
}

// The first engine runs on while the others are tried; the luckiest of
// its many runs must not beat another engine's trials, which were all
// faster than its own.
func TestEngineChooser_ALuckyRunOfTheFirstEngineDoesNotOutweighTheTrials(t *testing.T) {
	c := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	c.Observe("m", EngineWasmtime, 30*time.Microsecond) // its trials
	c.Observe("m", EngineWasmtime, 32*time.Microsecond)
	for i := range 1000 { // its runs while wazero is tried: noisy, one lucky
		c.Observe("m", EngineWasmtime, time.Duration(20+i%180)*time.Microsecond)
	}
	c.Observe("m", EngineWasmtime, 8*time.Microsecond)
	c.Observe("m", EngineWazero, 11*time.Microsecond)
	c.Observe("m", EngineWazero, 10*time.Microsecond)
	if e, ok := c.Chosen("m", 0); !ok || e != EngineWazero {
		t.Fatalf("Chosen = %s, %v; want wazero (trials 10-11 us against 30-32)", e, ok)
	}
	// Noisy trials: the mean decides, not the luckiest run.
	n := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 3)
	for _, d := range []time.Duration{28, 400, 250} {
		n.Observe("m", EngineWasmtime, d*time.Microsecond)
	}
	for _, d := range []time.Duration{34, 60, 130} {
		n.Observe("m", EngineWazero, d*time.Microsecond)
	}
	if e, ok := n.Chosen("m", 0); !ok || e != EngineWazero {
		t.Fatalf("noisy trials: Chosen = %s, %v; want wazero (mean 75 us against 226)", e, ok)
	}
	// The grid's Learner cannot tell trials from other runs: it compares all.
	l := NewEngineChooser([]string{EngineWazero, EngineWasmtime}, 2)
	l.Learner = true
	for _, d := range []time.Duration{30, 32, 8} {
		l.Observe("m", EngineWasmtime, d*time.Microsecond)
	}
	l.Observe("m", EngineWazero, 11*time.Microsecond)
	l.Observe("m", EngineWazero, 10*time.Microsecond)
	if e, ok := l.Chosen("m", 0); !ok || e != EngineWasmtime {
		t.Fatalf("Learner: Chosen = %s, %v; want wasmtime (its best run of all)", e, ok)
	}
}

// Tiny tasks get TinyTrials trials per engine; long ones trials.
func TestEngineChooser_TinyTasksGetMoreTrials(t *testing.T) {
	for _, tc := range []struct {
		name  string
		took  time.Duration
		wants int
	}{{"tiny", 50 * time.Microsecond, 5}, {"long", 50 * time.Millisecond, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewEngineChooser([]string{EngineWasmtime}, 2)
			c.engines = []string{EngineWasmtime, EngineWasmer} // wasmer: tried once the module ran enough
			c.TinyTrials = 5
			trials := 0
			for range 20 {
				e := c.Choose("m", 0)
				if e == EngineWasmer {
					trials++
				}
				c.Observe("m", e, tc.took)
			}
			if trials != tc.wants {
				t.Fatalf("wasmer had %d trials, want %d", trials, tc.wants)
			}
		})
	}
}

// Through a pool, auto discards an executor's first runs of a module on
// an engine, and asks for the CPU time of runs only while it measures.
func TestPool_AutoDiscardsWarmUpRunsAndMeasuresCPUWhileChoosing(t *testing.T) {
	mod := put(t, wasmtest.Hello("hi\n", "", 0))
	p := newPool(t, 1)
	if len(p.Engines()) < 2 {
		t.Skip("one engine here (built without cgo): auto has nothing to choose, nor to measure")
	}
	first := p.chooser.First()
	res, err := p.Run(testCtx(t), &Request{ModuleHash: mod, Engine: EngineAuto})
	if err != nil || res.Engine != first {
		t.Fatalf("first run: %+v, %v; want it on %s", res, err, first)
	}
	p.chooser.mu.Lock()
	observed := p.chooser.modules.m[mod].observed[first]
	p.chooser.mu.Unlock()
	if observed != 0 {
		t.Fatalf("the executor's first run was observed (%d): it is cold, no measure", observed)
	}
	if runtime.GOOS == "linux" && res.CPUTime <= 0 {
		t.Errorf("auto run while choosing: CPUTime %v, want it measured", res.CPUTime)
	}
	pinned, err := p.Run(testCtx(t), &Request{ModuleHash: mod, Engine: first})
	if err != nil || pinned.CPUTime != 0 {
		t.Fatalf("run on a named engine: CPUTime %v, %v; want it unmeasured (0)", pinned.CPUTime, err)
	}
}

// A tiny module's trials of an engine run back to back on the executor
// that got the first of them, until they are done.
func TestPool_TrialsOfATinyModuleRunBackToBackOnOneExecutor(t *testing.T) {
	p := newPool(t, 1)
	if len(p.Engines()) < 2 {
		t.Skip("one engine here (built without cgo): no trials")
	}
	first, other := p.chooser.First(), EngineWazero
	for range autoTinyTrials { // the first engine's runs: tiny
		p.chooser.Observe("m", first, 30*time.Microsecond)
	}
	proc := &process{}
	if e := p.streak(proc, "m", other); e != other {
		t.Fatalf("a trial of %s ran on %s", other, e)
	}
	if e := p.streak(proc, "m", first); e != other {
		t.Fatalf("next task on %s, want %s until its trials are done", e, other)
	}
	if e := p.streak(&process{}, "m", first); e != first {
		t.Fatalf("another executor's task went to %s, want %s", e, first)
	}
	for range autoTinyTrials {
		p.chooser.Observe("m", other, 20*time.Microsecond)
	}
	if e := p.streak(proc, "m", first); e != first {
		t.Fatalf("after the trials: %s, want the chooser's %s", e, first)
	}
}
