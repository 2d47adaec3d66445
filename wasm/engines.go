package wasm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Engine names, as in Request.Engine, Result.Engine and PoolConfig.Engines.
const (
	EngineAuto     = "auto"     // the pool picks; "" means the same
	EngineWazero   = "wazero"   // tetratelabs/wazero: pure Go, always available
	EngineWasmer   = "wasmer"   // wasmer-go (Cranelift): needs cgo and its bundled library
	EngineWasmtime = "wasmtime" // wasmtime-go (Cranelift): needs cgo and its bundled library
)

// ErrEngineUnavailable is wrapped by errors asking for an engine this
// binary or pool does not offer (not the task's fault).
var ErrEngineUnavailable = errors.New("engine not available")

const wasiModuleName = "wasi_snapshot_preview1"

// AvailableEngines lists the engines this binary can run, fastest-to-start
// first: always "wazero"; "wasmtime" where built with cgo on linux or
// macOS (amd64, arm64); "wasmer" where built with cgo on a platform
// wasmer-go has a library for (linux/amd64, darwin).
func AvailableEngines() []string {
	engines := []string{EngineWazero}
	if wasmtimeBuilt {
		engines = append(engines, EngineWasmtime)
	}
	if wasmerBuilt {
		engines = append(engines, EngineWasmer)
	}
	return engines
}

// NewEngine returns the named in-process engine ("wazero" or "wasmer").
func NewEngine(ctx context.Context, name string, cfg EngineConfig) (Engine, error) {
	switch name {
	case EngineWazero:
		return NewWazero(ctx, cfg)
	case EngineWasmer:
		return newWasmer(ctx, cfg)
	case EngineWasmtime:
		return newWasmtime(ctx, cfg)
	}
	return nil, fmt.Errorf("%w: unknown engine %q (have %v)", ErrEngineUnavailable, name, AvailableEngines())
}

// checkEngines validates a list of engine names against what this binary
// has; nil or empty means all of them.
func checkEngines(names []string) ([]string, error) {
	if len(names) == 0 {
		return AvailableEngines(), nil
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(AvailableEngines(), n) {
			return nil, fmt.Errorf("%w: %q (this binary has %v)", ErrEngineUnavailable, n, AvailableEngines())
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// longWorkRank orders engines by how fast they run long work (C kernels
// on this machine's measurements: wasmtime 1.28x native, wasmer 1.43x,
// wazero 2.3-2.9x), and cheapToStart is the engine with the smallest cost
// per task (BENCHMARKS.md: wazero's per-task cost is a tenth of the
// others').
var longWorkRank = map[string]int{EngineWasmtime: 0, EngineWasmer: 1, EngineWazero: 2}

const cheapToStart = EngineWazero

// DefaultTinyTask is EngineChooser.TinyTask unless set.
const DefaultTinyTask = 2 * time.Millisecond

// EngineChooser picks, per module, the engine that runs it fastest. It is
// safe because every engine gives the same bytes. Timings come from the
// caller (Observe), so a test can inject them.
//
// A module's first tasks run on the engine expected fastest for long work
// (wasmtime where the binary has it), trials times. The others are tried
// only when they may pay off:
//
//   - the engine cheapest to start (wazero), once the first engine's runs
//     turn out tiny (under TinyTask), where its smaller cost per task may
//     beat faster code;
//   - any other engine (wasmer), once the module's tasks have run, in
//     total, TrialWaitPerMiB per MiB of module: its compile must be worth
//     it (wasmer compiles a 2.6 MB Go-built module in ~4.5 s here).
//
// A trial runs one at a time per engine (a first trial may include a long
// compile: meanwhile other tasks go to the best engine measured so far).
// Each engine tried gets trials runs; then every task goes to the one with
// the shortest run: once an engine is measurably faster, the chooser stays
// on it (no exploration), so well over 95% of the remaining tasks run there.
//
// A Pool's chooser learns per worker. The grid's leader runs one more
// (scheduler/server) over every worker's reports, with Learner set: it
// hands out no trials, it only watches the runs workers chose, and the
// engine it settles on is handed to every worker in the assignments.
type EngineChooser struct {
	engines []string // by longWorkRank: engines[0] runs a module's first tasks
	trials  int

	// TrialWaitPerMiB: see the type's doc; 0 means no wait. Set before use.
	TrialWaitPerMiB time.Duration
	// TinyTask: see the type's doc; 0 means DefaultTinyTask. Set before use.
	TinyTask time.Duration
	// TinyTrials is how many trials each engine gets once a module's tasks
	// turn out tiny (see TinyTask), if more than trials: a tiny task's
	// run time varies several-fold from run to run on a busy machine,
	// and trials of it cost next to nothing. 0 means trials. Set before use.
	TinyTrials int
	// Learner makes a chooser that only watches runs others chose (the
	// grid's): an engine past the first that is not the cheapest to start
	// is waited for only once a run of it was observed, since a learner
	// cannot make anyone try it (each worker waits TrialWaitPerMiB on its
	// own runs, which a sum over workers would overtake). Set before use.
	Learner bool
	// MinReporters is how many distinct reporters (ObserveFrom) a module's
	// runs must come from before Chosen settles; 0 or 1 means any. Set
	// before use.
	MinReporters int

	mu      sync.Mutex
	modules perModule[*moduleTimings]
}

// maxChooserModules bounds how many modules a chooser remembers.
const maxChooserModules = 4096

type moduleTimings struct {
	reporters []string                 // distinct reporters seen, up to MinReporters
	ran       time.Duration            // total run time observed, on any engine
	handedOut map[string]int           // trials given out per engine
	observed  map[string]int           // trials (and later runs) measured per engine
	best      map[string]time.Duration // shortest run seen per engine
	trialSum  map[string]time.Duration // total of each engine's first trials runs
	trialRuns map[string]int           // how many runs trialSum holds
}

// NewEngineChooser returns a chooser among engines (in any order: it
// starts a module on the one ranked fastest for long work), trying each
// trials times (at least 1).
func NewEngineChooser(engines []string, trials int) *EngineChooser {
	sorted := slices.Clone(engines)
	slices.SortStableFunc(sorted, func(a, b string) int { return longWorkRank[a] - longWorkRank[b] })
	return &EngineChooser{engines: sorted, trials: max(trials, 1), modules: newPerModule[*moduleTimings](maxChooserModules)}
}

// Engines are the engines the chooser picks among, the first first.
func (c *EngineChooser) Engines() []string { return slices.Clone(c.engines) }

// First is the engine a module's first task runs on.
func (c *EngineChooser) First() string { return c.engines[0] }

// Choose returns the engine for the next task of module, whose size in
// bytes is size.
func (c *EngineChooser) Choose(module string, size int64) string {
	engine, _ := c.choose(module, size)
	return engine
}

// choose is Choose, and whether the chooser has settled on the module
// (as Chosen, MinReporters aside): a pool measures runs only until then.
func (c *EngineChooser) choose(module string, size int64) (engine string, settled bool) {
	if len(c.engines) == 1 {
		return c.engines[0], true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.timings(module)
	tried := c.worthTrying(m, size)
	settled = true
	for _, e := range tried { // still measuring: the least tried engine with no trial in flight
		if m.handedOut[e] < c.trialsFor(m) && m.observed[e] >= m.handedOut[e] && m.handedOut[e] <= minTried(m, tried) {
			m.handedOut[e]++
			return e, false
		}
		settled = settled && m.observed[e] >= c.trialsFor(m)
	}
	return c.best(m), settled
}

// worthTrying lists the engines that a module's timings so far make worth
// a trial, the first engine first.
func (c *EngineChooser) worthTrying(m *moduleTimings, size int64) []string {
	out := []string{c.engines[0]}
	if _, measured := m.best[c.engines[0]]; !measured {
		return out
	}
	tiny := c.isTiny(m)
	wait := time.Duration(float64(c.TrialWaitPerMiB) * float64(size) / (1 << 20))
	for _, e := range c.engines[1:] {
		if e == cheapToStart && tiny || e != cheapToStart && c.paysForCompile(m, e, wait) {
			out = append(out, e)
		}
	}
	return out
}

// paysForCompile reports whether engine e, neither the first nor the
// cheapest to start, is worth a trial: the module ran wait in total, or,
// for a Learner, someone tried it.
func (c *EngineChooser) paysForCompile(m *moduleTimings, e string, wait time.Duration) bool {
	if c.Learner {
		return m.observed[e] > 0
	}
	return m.ran >= wait
}

// trialsDone reports whether engine has had its trials of module.
func (c *EngineChooser) trialsDone(module, engine string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.modules.get(module)
	return ok && m.observed[engine] >= c.trialsFor(m)
}

// tinyTrials reports whether module's trials are those of a tiny module
// (TinyTrials of them).
func (c *EngineChooser) tinyTrials(module string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.modules.get(module)
	return ok && c.TinyTrials > c.trials && c.isTiny(m)
}

// trialsFor is how many trials each engine gets for a module.
func (c *EngineChooser) trialsFor(m *moduleTimings) int {
	if c.TinyTrials > c.trials && c.isTiny(m) {
		return c.TinyTrials
	}
	return c.trials
}

// isTiny reports whether the first engine's runs of a module are tiny.
func (c *EngineChooser) isTiny(m *moduleTimings) bool {
	tiny := c.TinyTask
	if tiny <= 0 {
		tiny = DefaultTinyTask
	}
	firstBest, measured := m.best[c.engines[0]]
	return measured && firstBest < tiny
}

// best is the engine with the shortest run measured, or the first engine.
// A pool's chooser compares the mean of each engine's trials instead: the
// first engine keeps running while the others are tried, and the shortest
// of its thousands of runs would beat the shortest of another's few however
// fast that one is; and a tiny task's cost varies several-fold from run to
// run on a busy machine (10 trials of each engine on the tiny example, at
// load 11: 27-423 us of CPU on wasmtime, 28-134 on wazero), where the mean
// is what a task costs. A Learner cannot tell a worker's trials from its
// other runs, nor cold runs from warm ones, so it keeps the shortest run
// it saw.
func (c *EngineChooser) best(m *moduleTimings) string {
	best, bestCost := "", time.Duration(0)
	for _, e := range c.engines {
		if d, ok := c.cost(m, e); ok && (best == "" || d < bestCost) {
			best, bestCost = e, d
		}
	}
	if best == "" {
		best = c.engines[0]
	}
	return best
}

// cost is what best compares of engine e's runs of a module, if any.
func (c *EngineChooser) cost(m *moduleTimings, e string) (time.Duration, bool) {
	if c.Learner {
		d, ok := m.best[e]
		return d, ok
	}
	n := m.trialRuns[e]
	if n == 0 {
		return 0, false
	}
	return m.trialSum[e] / time.Duration(n), true
}

// minTried is the fewest trials any of engines has been given.
func minTried(m *moduleTimings, engines []string) int {
	lo := m.handedOut[engines[0]]
	for _, e := range engines[1:] {
		lo = min(lo, m.handedOut[e])
	}
	return lo
}

// Observe records that a task of module ran on engine in d.
func (c *EngineChooser) Observe(module, engine string, d time.Duration) {
	c.ObserveFrom(module, engine, "", d)
}

// Discard records that a task of module ran on engine but its time says
// nothing fair: it was the module's first run on that engine in its
// executor, with cold caches and first page faults (a tiny module's first
// wasmtime run there took 2.3 ms against 15 us warm). Measured, such runs
// kept every engine but the first from winning: the first engine soon has
// many warm runs, the others only their few trials. The run is not
// observed, and the trial it may have been is handed out again.
func (c *EngineChooser) Discard(module, engine string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.modules.get(module); ok && m.handedOut[engine] > m.observed[engine] {
		m.handedOut[engine]--
	}
}

// ObserveFrom is Observe of a run that reporter (a worker) measured; it
// counts towards MinReporters. An engine the chooser does not know is
// ignored.
func (c *EngineChooser) ObserveFrom(module, engine, reporter string, d time.Duration) {
	if !slices.Contains(c.engines, engine) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.timings(module)
	if len(m.reporters) < c.MinReporters && !slices.Contains(m.reporters, reporter) {
		m.reporters = append(m.reporters, reporter)
	}
	m.ran += d
	m.observed[engine]++
	if old, ok := m.best[engine]; !ok || d < old {
		m.best[engine] = d
	}
	if m.observed[engine] <= c.trialsFor(m) {
		m.trialSum[engine] += d
		m.trialRuns[engine]++
	}
}

// Chosen returns the engine the chooser has settled on for module: every
// engine worth trying (for a module of size bytes) has had its trials,
// from at least MinReporters reporters. It returns false while it is
// still measuring.
func (c *EngineChooser) Chosen(module string, size int64) (string, bool) {
	if len(c.engines) == 1 {
		return c.engines[0], true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.modules.get(module)
	if !ok || len(m.reporters) < c.MinReporters {
		return "", false
	}
	for _, e := range c.worthTrying(m, size) {
		if m.observed[e] < c.trialsFor(m) {
			return "", false
		}
	}
	return c.best(m), true
}

func (c *EngineChooser) timings(module string) *moduleTimings {
	return c.modules.getOrAdd(module, func() *moduleTimings {
		return &moduleTimings{handedOut: map[string]int{}, observed: map[string]int{}, best: map[string]time.Duration{},
			trialSum: map[string]time.Duration{}, trialRuns: map[string]int{}}
	})
}
