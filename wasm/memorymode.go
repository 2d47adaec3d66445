package wasm

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// memoryMode is how wasmtime's compiled code keeps a module inside its
// linear memory (wasmtime.go; the rest of this file is plain Go, so the
// choice is tested where wasmtime is not built too). Both give a task the same bytes: an access past the
// memory's size traps in either; they differ in what that costs.
type memoryMode int

const (
	// modeGuarded: code without bounds checks, relying on every page past
	// the memory's size being inaccessible. The fastest code, but a
	// memory's slot is re-protected down to the module's initial size at
	// each instantiate and made accessible again at each grow: a Go-built
	// module grows 576 KiB at its start, and on this VM (a PVM guest, page
	// tables changed through the hypervisor) that and the reset of the
	// pages it re-protected cost ~0.7-1 ms a task (BENCHMARKS.md).
	modeGuarded memoryMode = iota
	// modeChecked: code that checks every access against the memory's
	// current size (no guard pages), so the pages a task grew into stay
	// mapped read-write, zeroed, for the next task: no mprotect per task.
	// A Go-built module's task then spends ~0.1 ms outside the module
	// instead of ~1, but memory-heavy loops run 1.2-1.9x slower
	// (PolyBench-style kernels, Go's nbody: its stack is in linear memory).
	modeChecked
)

func (m memoryMode) String() string {
	if m == modeChecked {
		return "checked"
	}
	return "guarded"
}

// checkedMaxMemory is the largest memory of bounds-checked code
// (modeChecked): wasmtime elides bounds checks whenever a memory's
// reservation covers the 4 GiB a 32-bit index can reach, so the
// reservation, and with it the largest memory, stays a page under that.
const checkedMaxMemory = 4<<30 - wasmPageSize

// forcedMemoryMode, if set, is the mode of every wasmtime run in this
// process that a memory limit allows. Tests set it, in executors through
// executorTestHook, to run the contract suite on both modes.
var forcedMemoryMode atomic.Pointer[memoryMode]

// Choosing a module's mode (memoryModes):
const (
	// modeTrials is how many warm runs of each mode are compared, by
	// their medians: the choice is for good, and on a busy machine a few
	// of them are descheduled (with means of 5, a module whose checked
	// runs took a third of its guarded runs' time settled guarded in one
	// of three benchmark runs at load 8).
	modeTrials = 9
	// checkedWorthShare: checked code is tried only for a module whose
	// guarded runs spend at least this share of their time outside the
	// module (1/10), the most checked code can save; below it, slower
	// code would cost more than it could save.
	checkedWorthShare = 10
	// checkedRevertFactor: a module settled on checked code goes back to
	// guarded code for good once its runs spend, on a moving average, this
	// many times the guarded runs' mean time outside the module inside it
	// (the saving is then at most 1/20 of a run, the checks may cost far
	// more). The average (each run weighing 1/checkedRevertWeight) moves
	// past that after ~4 long runs in a row; one run descheduled on a
	// busy machine does not move it there.
	checkedRevertFactor = 20
	checkedRevertWeight = 8
	// maxModeModules bounds how many modules memoryModes remembers.
	maxModeModules = 4096
)

// memoryModes picks, per module, the memoryMode that runs its tasks
// fastest, as an EngineChooser picks engines. A module starts guarded, so
// a one-task job of a long kernel gets the fastest code. Checked code,
// which needs a second compile, is tried only once the module's guarded
// runs spend a tenth of their time outside the module and, unless its
// checked code is in the disk cache already, their time outside the
// module adds up to what their compile took: checked code can save at
// most that time, so the second compile is paid for by what it could have
// saved so far (waiting for the runs' whole time instead put a 5.5 s
// compile in the middle of a 2,000-task job of 8 ms tasks, which it
// slowed down). Then modeTrials warm runs of each (each mode's first run
// in this process is cold and not counted) decide, by their median run
// time (instantiate, run and reset: what a task costs). Safe to use from
// several goroutines.
type memoryModes struct {
	// override, if set, is the mode of every run a memory limit allows
	// (tests). Set before use.
	override *memoryMode
	// log tells of each decision (a comparison settled, lost, or a
	// settled module gone back to guarded code): the choice moves a
	// module's run time by up to a fifth, and a reader of the worker's
	// log (executors' stderr, at debug) should see when and why. Set
	// before use; nil logs nothing.
	log *slog.Logger

	mu      sync.Mutex
	modules perModule[*moduleModeRuns]
}

type moduleModeRuns struct {
	compile time.Duration      // how long compiling (or loading) guarded code took
	cached  bool               // checked code is in the disk cache: no compile to pay for
	waited  time.Duration      // total time guarded runs spent outside the module
	retryAt time.Duration      // after a lost comparison: waited before the next one
	losses  int                // comparisons checked code lost
	seen    [2]int             // runs per mode, cold ones included
	trials  [2][]time.Duration // run times of the warm runs compared, per mode
	outside time.Duration      // the guarded trials' time outside the module
	inside  time.Duration      // moving average of checked runs' time inside the module
	settled bool
	mode    memoryMode // once settled
}

func newMemoryModes() *memoryModes {
	return &memoryModes{modules: newPerModule[*moduleModeRuns](maxModeModules)}
}

// choose returns the mode for the next task of module under a memory
// limit of limit bytes: checked code cannot have a memory past
// checkedMaxMemory, so a limit above it always runs guarded.
func (c *memoryModes) choose(module string, limit uint64) memoryMode {
	if limit > checkedMaxMemory {
		return modeGuarded
	}
	if c.override != nil {
		return *c.override
	}
	if forced := forcedMemoryMode.Load(); forced != nil {
		return *forced
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.runs(module)
	switch {
	case m.settled:
		return m.mode
	case len(m.trials[modeGuarded]) < modeTrials:
		return modeGuarded
	case m.outside*checkedWorthShare < sumDurations(m.trials[modeGuarded]):
		m.settled, m.mode = true, modeGuarded
		c.note("memory mode settled", module, "mode", modeGuarded, "outside", m.outside,
			"guarded_runs", sumDurations(m.trials[modeGuarded]), "why", "under a tenth of its runs outside the module")
		return modeGuarded
	case !m.cached && m.waited < m.compile: // not yet worth a second compile
		return modeGuarded
	case m.waited < m.retryAt: // checked code lost last time
		return modeGuarded
	case len(m.trials[modeChecked]) < modeTrials:
		return modeChecked
	}
	checked, guarded := medianDuration(m.trials[modeChecked]), medianDuration(m.trials[modeGuarded])
	if checked < guarded {
		m.settled, m.mode = true, modeChecked
		c.note("memory mode settled", module, "mode", modeChecked, "checked_median", checked, "guarded_median", guarded)
		return modeChecked
	}
	m.retryLater()
	c.note("memory mode: checked code lost, guarded until a retrial", module, "checked_median", checked,
		"guarded_median", guarded, "losses", m.losses, "retry_after_outside", m.retryAt-m.waited)
	return modeGuarded
}

// retryLater starts the comparison over, both modes' trials, once the
// guarded runs have spent another stretch outside the module, doubled
// with each loss: on a busy machine a few descheduled trials can make
// the faster code lose (under strace, one of two benchmark runs of the
// Go module that checked code runs at a third of the time settled
// guarded), and a retrial of code already compiled costs at most
// modeTrials runs.
func (m *moduleModeRuns) retryLater() {
	m.losses++
	m.retryAt = m.waited + max(m.compile, time.Second)<<min(m.losses-1, 10)
	m.trials = [2][]time.Duration{}
	m.outside = 0
}

func sumDurations(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

func medianDuration(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

// compiled records how long module's guarded code took to compile or
// load, and whether its checked code is in the disk cache.
func (c *memoryModes) compiled(module string, d time.Duration, checkedCached bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.runs(module)
	m.compile, m.cached = d, checkedCached
}

// observe records a run of module in mode that took d, moduleTime of it
// inside the module.
func (c *memoryModes) observe(module string, mode memoryMode, d, moduleTime time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.runs(module)
	m.seen[mode]++
	if mode == modeGuarded {
		m.waited += d - moduleTime
	}
	if m.seen[mode] > 1 && len(m.trials[mode]) < modeTrials { // the first is cold
		m.trials[mode] = append(m.trials[mode], d)
		if mode == modeGuarded {
			m.outside += d - moduleTime
		}
	}
	if mode == modeChecked {
		m.inside += (moduleTime - m.inside) / checkedRevertWeight
	}
	if m.settled && m.mode == modeChecked && len(m.trials[modeGuarded]) > 0 &&
		m.inside > checkedRevertFactor*m.outside/time.Duration(len(m.trials[modeGuarded])) {
		m.mode = modeGuarded
		c.note("memory mode back to guarded for good", module, "inside_average", m.inside,
			"guarded_outside_mean", m.outside/time.Duration(len(m.trials[modeGuarded])))
	}
}

// note logs a decision for module (its hash) with c's logger, if it has
// one. Called with c.mu held:
// decisions are rare (a few per module), and the handler writes a line.
func (c *memoryModes) note(msg, module string, args ...any) {
	if c.log == nil {
		return
	}
	c.log.Info(msg, append([]any{"module", module}, args...)...)
}

func (c *memoryModes) runs(module string) *moduleModeRuns {
	return c.modules.getOrAdd(module, func() *moduleModeRuns { return &moduleModeRuns{} })
}
