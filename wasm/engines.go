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

// EngineChooser picks, per module, the engine that ran it faster. For a
// module's first tasks it hands out each engine trials times in turn, one
// trial per engine at a time (a first trial may include a long compile:
// meanwhile other tasks go to the best engine measured so far, or the
// first engine); once every engine has a timing it keeps the one with the
// shortest run. It is safe because every engine gives the same bytes.
// Timings come from the caller (Observe), so a test can inject them.
//
// Engines after the first are tried on a module only once its tasks have
// run, in total, TrialWaitPerMiB per MiB of module: their compile must be
// worth it. (wasmer compiles a 2.6 MB Go-built module in ~4.5 s here,
// wazero in ~1.6 s; a job of 50 tasks of 50 ms would otherwise wait for
// the trial's compile. A C kernel of 30 KB is tried after ~60 ms of work.)
type EngineChooser struct {
	engines []string
	trials  int

	// TrialWaitPerMiB: see the type's doc; 0 means no wait. Set before use.
	TrialWaitPerMiB time.Duration

	mu      sync.Mutex
	modules map[string]*moduleTimings
	order   []string // modules by first use, to bound the map
}

// maxChooserModules bounds how many modules a chooser remembers.
const maxChooserModules = 4096

type moduleTimings struct {
	ran       time.Duration            // total run time observed, on any engine
	handedOut map[string]int           // trials given out per engine
	observed  map[string]int           // trials (and later runs) measured per engine
	best      map[string]time.Duration // shortest run seen per engine
}

// NewEngineChooser returns a chooser among engines (in order of
// preference while nothing is measured), trying each trials times
// (at least 1).
func NewEngineChooser(engines []string, trials int) *EngineChooser {
	return &EngineChooser{engines: slices.Clone(engines), trials: max(trials, 1), modules: map[string]*moduleTimings{}}
}

// Choose returns the engine for the next task of module, whose size in
// bytes is size.
func (c *EngineChooser) Choose(module string, size int64) string {
	if len(c.engines) == 1 {
		return c.engines[0]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.timings(module)
	wait := time.Duration(float64(c.TrialWaitPerMiB) * float64(size) / (1 << 20))
	for i, e := range c.engines { // still measuring: the least tried engine with no trial in flight
		if i > 0 && m.ran < wait {
			break
		}
		if m.handedOut[e] < c.trials && m.observed[e] >= m.handedOut[e] && m.handedOut[e] <= minTried(m, c.engines) {
			m.handedOut[e]++
			return e
		}
	}
	best := ""
	for _, e := range c.engines {
		if d, ok := m.best[e]; ok && (best == "" || d < m.best[best]) {
			best = e
		}
	}
	if best == "" {
		best = c.engines[0]
	}
	return best
}

// minTried is the fewest trials any engine has been given.
func minTried(m *moduleTimings, engines []string) int {
	lo := m.handedOut[engines[0]]
	for _, e := range engines[1:] {
		lo = min(lo, m.handedOut[e])
	}
	return lo
}

// Observe records that a task of module ran on engine in d.
func (c *EngineChooser) Observe(module, engine string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.timings(module)
	m.ran += d
	m.observed[engine]++
	if old, ok := m.best[engine]; !ok || d < old {
		m.best[engine] = d
	}
}

// Chosen returns the engine the chooser has settled on for module, and
// false while it is still measuring.
func (c *EngineChooser) Chosen(module string) (string, bool) {
	if len(c.engines) == 1 {
		return c.engines[0], true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.modules[module]
	if !ok {
		return "", false
	}
	best := ""
	for _, e := range c.engines {
		d, ok := m.best[e]
		if !ok || m.handedOut[e] < c.trials {
			return "", false
		}
		if best == "" || d < m.best[best] {
			best = e
		}
	}
	return best, best != ""
}

func (c *EngineChooser) timings(module string) *moduleTimings {
	m, ok := c.modules[module]
	if !ok {
		if len(c.order) >= maxChooserModules {
			delete(c.modules, c.order[0])
			c.order = c.order[1:]
		}
		m = &moduleTimings{handedOut: map[string]int{}, observed: map[string]int{}, best: map[string]time.Duration{}}
		c.modules[module] = m
		c.order = append(c.order, module)
	}
	return m
}
