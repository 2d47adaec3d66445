package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// helloTimeout bounds how long a new executor may take to become ready.
const helloTimeout = 30 * time.Second

// PoolConfig configures a Pool.
type PoolConfig struct {
	Size      int       // executors, default runtime.NumCPU()
	CacheDir  string    // on-disk compile cache shared by the executors; "" means each compiles in memory
	ModuleDir ModuleDir // where executors read modules
	Command   []string  // how to start an executor; default: os.Executable() with no args
	Logger    *slog.Logger

	// Engines are the engines this pool offers (see AvailableEngines);
	// nil means all this binary has. A request for another is refused with
	// ErrEngineUnavailable.
	Engines []string
	// AutoTrials is how many tasks of a module each engine tried runs
	// before a request with Engine "auto" keeps the fastest; 0 means 2.
	// See EngineChooser for which engines are tried.
	AutoTrials int
	// LowestPriority starts executors at the lowest CPU priority: nice 19
	// and SCHED_IDLE on Linux, nice 19 and the background band on macOS,
	// IDLE_PRIORITY_CLASS on Windows. A volunteer's worker wants it; tests
	// on a loaded machine may not (idle-priority tasks wait behind
	// everything else, and a task's timeout counts that wait).
	//
	// Otherwise, on Linux, a pool with one executor per CPU this process
	// may use pins each executor to a CPU of its own (see executorCPUs).
	LowestPriority bool

	// CompileTimeout bounds how long compiling a module may take in an
	// executor; past it the task fails as KindInvalidModule and the
	// executor is replaced. 0 means DefaultCompileTimeout; negative, none.
	CompileTimeout time.Duration
	// MaxExecutorGrowth is how far an executor's resident memory may grow
	// over what it was when it started before the pool replaces it after a
	// task (its caches, a fragmented heap, whatever a task left behind);
	// 0 means DefaultMaxExecutorGrowth. Linux only (it reads /proc).
	MaxExecutorGrowth uint64
}

// DefaultCompileTimeout is PoolConfig.CompileTimeout unless set: the
// biggest function the structural limits allow (7.6 MB) compiles in 4-6 s
// on each engine here and a 2.9 MB Go-built module in 5-10 s; a module at
// the 256 MiB module limit made of such functions would need minutes, and
// is not a task a volunteer should be made to compile.
const DefaultCompileTimeout = 2 * time.Minute

// DefaultMaxExecutorGrowth is PoolConfig.MaxExecutorGrowth unless set. An
// executor that ran the 2.9 MB Go guest on each engine in turn holds
// ~120 MB more than at start (compiled code kept in memory); 512 MiB
// leaves room for a few such modules.
const DefaultMaxExecutorGrowth = 512 << 20

// PoolStats counts what a Pool did to its executors.
type PoolStats struct {
	// ReplacedOvergrown is how many executors were replaced after a task
	// because their resident memory had grown past MaxExecutorGrowth.
	ReplacedOvergrown uint64
	// DiedOfMemory is how many died of their memory box under a task.
	DiedOfMemory uint64
}

// defaultAutoTrials: the first run of a module on an engine may still pay
// for cold caches, so each engine gets two.
const defaultAutoTrials = 2

// autoTinyTrials is EngineChooser.TinyTrials in a Pool: ten runs of each
// engine on a tiny module (under DefaultTinyTask) cost a few milliseconds,
// and with two the tiny example's job settled on the engine that costs
// twice as much per task in one run of five on a busy machine.
const autoTinyTrials = 10

// autoTrialWaitPerMiB is EngineChooser.TrialWaitPerMiB in a Pool: an
// engine tried after the first must be able to pay back its compile. wasmer
// compiles ~1.7 s per MiB of module on the 2-vCPU machine of BENCHMARKS.md
// and wins by ~20% where it wins at all, so a module must have run about
// 1.7 s / 0.2 per MiB first. (At 2 s per MiB, a 2,000-task job of a
// 2.6 MB Go-built module stopped one of two cores for a 4.5 s wasmer
// compile a third of the way through: parallel efficiency 0.87.)
const autoTrialWaitPerMiB = 9 * time.Second

// Pool runs tasks in executor child processes, one task per child at a
// time. At a task's deadline, or if the caller gives up, the child is
// killed, which stops even a tight loop at full speed; a child that dies
// under a task is a KindCrash failure of that task only. Either way a new
// child is started at once in the background.
type Pool struct {
	cfg     PoolConfig
	log     *slog.Logger
	chooser *EngineChooser
	warmUp  time.Duration // warmUpTime; tests may shorten it
	env     []string
	slots   chan *process // one token per executor; nil means the slot has no live child
	closed  chan struct{}

	sizes sync.Map // module hash -> size: modules are content-addressed and never change

	nOvergrown, nDiedOfMemory atomic.Uint64 // PoolStats

	mu       sync.Mutex
	isClosed bool
	live     map[*process]struct{}
	cpus     []int            // executorCPUs; nil means executors are not pinned
	cpuOf    map[*process]int // the CPU each pinned executor is bound to
	wg       sync.WaitGroup   // executor goroutines and respawns

	// Pausing and CPU limits (pause.go, cpulimit.go), under mu.
	busy     map[*process]struct{} // children running a task
	paused   bool
	cpuShare float64 // of the machine, (0, 1); 0 means no limit
	offPhase bool    // the duty cycle has the busy children stopped
	duty     *runningLoop
}

// NewPool starts cfg.Size executors and waits until they are ready.
func NewPool(ctx context.Context, cfg PoolConfig) (*Pool, error) {
	if os.Getenv(executorEnv) == "1" {
		// We are an executor child whose main did not call MaybeRunExecutor:
		// starting more children would recurse without end.
		return nil, fmt.Errorf("%w: NewPool called inside an executor child: call wasm.MaybeRunExecutor first in main and TestMain", ErrExecutor)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg: cfg, log: cfg.Logger, chooser: NewEngineChooser(autoEngines(cfg.Engines), cfg.AutoTrials), warmUp: warmUpTime,
		env:   executorEnviron(cfg),
		slots: make(chan *process, cfg.Size), closed: make(chan struct{}),
		live: map[*process]struct{}{}, busy: map[*process]struct{}{},
		cpus: executorCPUs(cfg), cpuOf: map[*process]int{},
	}
	p.chooser.TrialWaitPerMiB = autoTrialWaitPerMiB
	p.chooser.TinyTrials = autoTinyTrials
	if err := p.startAll(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

func (cfg *PoolConfig) setDefaults() error {
	if cfg.Size <= 0 {
		cfg.Size = runtime.NumCPU()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ModuleDir == "" {
		return fmt.Errorf("%w: PoolConfig.ModuleDir is empty", ErrExecutor)
	}
	engines, err := checkEngines(cfg.Engines)
	if err != nil {
		return err
	}
	cfg.Engines = engines
	if cfg.AutoTrials <= 0 {
		cfg.AutoTrials = defaultAutoTrials
	}
	if cfg.CompileTimeout == 0 {
		cfg.CompileTimeout = DefaultCompileTimeout
	}
	if cfg.MaxExecutorGrowth == 0 {
		cfg.MaxExecutorGrowth = DefaultMaxExecutorGrowth
	}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: find own executable: %v", ErrExecutor, err)
		}
		cfg.Command = []string{exe}
	}
	return nil
}

func executorEnviron(cfg PoolConfig) []string {
	return append(os.Environ(),
		executorEnv+"=1",
		executorCacheEnv+"="+cfg.CacheDir,
		executorModuleEnv+"="+string(cfg.ModuleDir),
		executorCompileEnv+"="+max(cfg.CompileTimeout, 0).String())
}

// startAll starts every executor at once, then waits for each to be ready.
func (p *Pool) startAll(ctx context.Context) error {
	procs := make([]*process, 0, p.cfg.Size)
	for range p.cfg.Size {
		proc, err := p.start()
		if err != nil {
			return err
		}
		procs = append(procs, proc)
	}
	for i, proc := range procs {
		if err := proc.awaitHello(ctx, helloTimeout); err != nil {
			for _, proc := range procs[i:] {
				proc.discard()
			}
			return err
		}
		p.slots <- proc
	}
	p.log.Debug("executor pool ready", "size", p.cfg.Size)
	return nil
}

// start starts one child and registers it, unless the pool is closed.
func (p *Pool) start() (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isClosed {
		return nil, ErrPoolClosed
	}
	var proc *process
	startChild := func() (err error) {
		proc, err = startProcess(p.cfg.Command, p.env, p.log, &p.wg, p.cfg.LowestPriority)
		return err
	}
	cpu, pinned := p.freeCPU()
	var err error
	if pinned {
		err = startOnCPU(cpu, startChild)
	} else {
		err = startChild()
	}
	if err != nil {
		return nil, err
	}
	p.live[proc] = struct{}{}
	if pinned {
		p.cpuOf[proc] = cpu
	}
	p.wg.Add(1)
	go func() { // forget the child once it is reaped
		defer p.wg.Done()
		<-proc.exited
		p.mu.Lock()
		delete(p.live, proc)
		delete(p.cpuOf, proc)
		p.mu.Unlock()
	}()
	p.log.Debug("executor started", "executor", proc.pid, "cpu", cpuAttr(cpu, pinned))
	return proc, nil
}

// executorCPUs are the CPUs a pool pins its executors to, one each, or nil
// if it does not: on Linux, when there is one executor per CPU this
// process may use and they do not run at the lowest priority. Left to the
// kernel, two busy executors on a 2-CPU machine were often put on the same
// CPU while other programs ran on the other, each then getting half a CPU:
// 104-109 Go-built tasks/s against 251-258 pinned, the same machine and
// load (BENCHMARKS.md, BenchmarkGoModuleParallel). An idle-priority
// executor must be free to move to whichever CPU the volunteer leaves idle.
func executorCPUs(cfg PoolConfig) []int {
	if cfg.LowestPriority {
		return nil
	}
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) < 2 || len(cpus) != cfg.Size {
		return nil
	}
	return cpus
}

// freeCPU is the first CPU of p.cpus no live executor is pinned to; false
// if executors are not pinned or every CPU has one. Under p.mu.
func (p *Pool) freeCPU() (int, bool) {
	used := map[int]bool{}
	for proc, cpu := range p.cpuOf {
		select {
		case <-proc.exited: // reaped, if not forgotten yet: its CPU is free
		default:
			used[cpu] = true
		}
	}
	for _, cpu := range p.cpus {
		if !used[cpu] {
			return cpu, true
		}
	}
	return 0, false
}

// cpuAttr is a log value: the CPU an executor is pinned to, or "any".
func cpuAttr(cpu int, pinned bool) any {
	if pinned {
		return cpu
	}
	return "any"
}

// spawn starts a child and waits until it is ready.
func (p *Pool) spawn(ctx context.Context) (*process, error) {
	proc, err := p.start()
	if err != nil {
		return nil, err
	}
	if err := proc.awaitHello(ctx, helloTimeout); err != nil {
		proc.discard()
		if p.isClosedNow() {
			return nil, ErrPoolClosed
		}
		return nil, err
	}
	return proc, nil
}

// Run runs req in a free executor, waiting for one if all are busy (ctx
// bounds the wait). It returns a non-nil *Result whenever the module ran,
// also on failure (with what the task wrote; at a timeout, what it wrote
// until the deadline, if the child could still send it), and a *TaskError
// for every failure of the task: a non-zero exit is (*Result with ExitCode,
// KindExit). Errors that are not the task's fault (a missing module, a
// closed pool, ctx done) are plain errors.
func (p *Pool) Run(ctx context.Context, req *Request) (*Result, error) {
	t, err := p.prepare(req)
	if err != nil {
		return nil, err
	}
	proc, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if t.measuring {
		t.engine = p.streak(proc, req.ModuleHash, t.engine)
		t.sent.Engine = t.engine
	}
	cold := proc.warmingUp(t.engine, req.ModuleHash, p.warmUp)
	p.setBusy(proc, true)
	res, err, healthy := proc.run(ctx, p.closed, &t.sent, t.box())
	p.setBusy(proc, false)
	p.ran(proc, t, cold, res, err)
	if healthy && p.overgrown(proc) {
		healthy = false
	}
	p.release(proc, healthy, err)
	return res, err
}

// prepared is a request made ready to send to an executor: its engine
// resolved (auto: the pool's choice; measuring: that choice is a trial)
// and its file paths made absolute.
type prepared struct {
	sent            Request
	size            int64
	engine          string
	auto, measuring bool
}

// prepare checks req and resolves what the executor needs of it.
func (p *Pool) prepare(req *Request) (*prepared, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	size, ok := p.moduleSize(req.ModuleHash)
	if !ok {
		return nil, fmt.Errorf("module %s: %w in %s", req.ModuleHash, ErrModuleNotFound, string(p.cfg.ModuleDir))
	}
	engine, auto, measuring, err := p.engineFor(req, size)
	if err != nil {
		return nil, err
	}
	t := &prepared{sent: *req, size: size, engine: engine, auto: auto, measuring: measuring}
	t.sent.Engine, t.sent.measureCPU = engine, measuring
	if t.sent.StdinPath != "" && !filepath.IsAbs(t.sent.StdinPath) {
		// The child opens it: it must not depend on the child's directory.
		if t.sent.StdinPath, err = filepath.Abs(t.sent.StdinPath); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrStdinFile, err)
		}
	}
	if t.sent.StdoutPath != "" && !filepath.IsAbs(t.sent.StdoutPath) {
		if t.sent.StdoutPath, err = filepath.Abs(t.sent.StdoutPath); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrStdoutFile, err)
		}
	}
	return t, nil
}

// box is the task's memory box, to name if its executor dies of it.
func (t *prepared) box() memoryBox {
	return memoryBox{cap: t.sent.Limits.memoryBytes(), allowance: engineAllowance(t.size)}
}

// ran records what a run of t on proc tells: the executor's warmth, the
// auto chooser's observation, and the result's engine.
func (p *Pool) ran(proc *process, t *prepared, cold bool, res *Result, err error) {
	module := t.sent.ModuleHash
	if res != nil {
		proc.ran(t.engine, module, res.Duration)
	}
	if proc.diedOfMemory {
		p.nDiedOfMemory.Add(1)
	}
	if res != nil && res.Engine == "" {
		res.Engine = t.engine
	}
	if t.auto && (res == nil || err != nil && KindOf(err) != KindExit) {
		proc.pin = trialStreak{} // a failing run measures nothing: no streak of it
	}
	if t.auto && res != nil && (err == nil || KindOf(err) == KindExit) {
		if cold {
			p.chooser.Discard(module, t.engine)
		} else {
			p.chooser.Observe(module, t.engine, choiceCost(res))
		}
	}
}

// streak keeps an executor on one engine while that engine's trials of a
// tiny module run, and returns the engine to run: chosen, or the one the
// executor is kept on (chosen's trial, if it was one, is handed out
// again). A trial run between other engines' tasks on the same executor
// is measured with that executor's caches cold for it and charged for the
// garbage and finalizers of the tasks before: the tiny example's wazero
// trials, alternating with wasmtime's, cost as much as wasmtime's, and
// the pool kept wasmtime at twice the CPU per task in half its jobs.
func (p *Pool) streak(proc *process, module, chosen string) string {
	if pin := proc.pin; pin.module == module {
		if !p.chooser.trialsDone(module, pin.engine) {
			if chosen != pin.engine {
				p.chooser.Discard(module, chosen)
			}
			return pin.engine
		}
		proc.pin = trialStreak{}
	}
	if chosen != p.chooser.First() && p.chooser.tinyTrials(module) && !p.chooser.trialsDone(module, chosen) {
		proc.pin = trialStreak{module: module, engine: chosen}
	}
	return chosen
}

// choiceCost is what auto compares engines by in a pool: the executor's
// CPU time over the run where it was measured, else the run time. The CPU
// time counts what an engine leaves to its runtime (wazero's garbage, the
// finalizers of wasmtime-go's objects) and not the time other programs
// held the core: on a busy machine the tiny example ran 3x faster on
// wazero than on wasmtime by run time alone, yet its trials, run beside
// the other engines', kept picking wasmtime, which cost its executors a
// third more CPU per task. For a long task the two are the same.
func choiceCost(res *Result) time.Duration {
	if res.CPUTime > 0 {
		return res.CPUTime
	}
	return res.Duration
}

// rssCheckEvery is how often at most the pool reads an executor's resident
// memory: reading /proc costs ~60 us here, as much as a tiny task, so it is
// read after every task that ran this long and after one such task of a
// flood of short ones.
const rssCheckEvery = 250 * time.Millisecond

// overgrown reports whether an executor's resident memory after a task is
// past its start plus MaxExecutorGrowth, and counts it: it is replaced
// rather than given the next task.
func (p *Pool) overgrown(proc *process) bool {
	now := time.Now()
	if now.Sub(proc.rssCheckedAt) < rssCheckEvery {
		return false
	}
	proc.rssCheckedAt = now
	rss, ok := residentBytes(proc.pid)
	if !ok || proc.startRSS == 0 || rss <= proc.startRSS+p.cfg.MaxExecutorGrowth {
		return false
	}
	p.nOvergrown.Add(1)
	p.log.Info("replacing an executor whose memory grew", "executor", proc.pid,
		"rss", formatBytes(rss), "at_start", formatBytes(proc.startRSS), "max_growth", formatBytes(p.cfg.MaxExecutorGrowth))
	return true
}

// Stats returns what the pool did to its executors so far.
func (p *Pool) Stats() PoolStats {
	return PoolStats{ReplacedOvergrown: p.nOvergrown.Load(), DiedOfMemory: p.nDiedOfMemory.Load()}
}

// moduleSize is ModuleDir.size, remembered: a module's file never changes,
// so only its first task pays for the stat.
func (p *Pool) moduleSize(hash string) (int64, bool) {
	if v, ok := p.sizes.Load(hash); ok {
		return v.(int64), true
	}
	size, ok := p.cfg.ModuleDir.size(hash)
	if ok {
		p.sizes.Store(hash, size)
	}
	return size, ok
}

// engineFor resolves req.Engine to an engine this pool offers; auto reports
// that the chooser picked it, measuring that it has not settled yet (the
// run's CPU time is then wanted: choiceCost).
func (p *Pool) engineFor(req *Request, size int64) (engine string, auto, measuring bool, err error) {
	switch req.Engine {
	case "", EngineAuto:
		engine, settled := p.chooser.choose(req.ModuleHash, size)
		return engine, true, !settled, nil
	}
	for _, e := range p.cfg.Engines {
		if e == req.Engine {
			return e, false, false, nil
		}
	}
	return "", false, false, fmt.Errorf("%w: %q (this pool offers %v)", ErrEngineUnavailable, req.Engine, p.cfg.Engines)
}

// autoEngines are the engines auto chooses among, of the engines a pool
// offers: the one fastest for long work, and the one cheapest to start
// (for tiny tasks). Another compiled engine (wasmer, where wasmtime is
// too) is left to jobs that name it: it runs no module faster than
// wasmtime here (C kernels 1.43x native against 1.28x; the 2.6 MB Go-built
// spin kernel 8.6 ms a task against wasmtime's 4.9-6.1 and wazero's 6.0,
// BENCHMARKS.md), and its trial cost each executor a ~4.5 s compile in
// the middle of a job, after which two trials' noise kept it for most of
// that job on a 2-core grid.
func autoEngines(offered []string) []string {
	ranked := slices.Clone(offered)
	slices.SortStableFunc(ranked, func(a, b string) int { return longWorkRank[a] - longWorkRank[b] })
	out := ranked[:min(1, len(ranked))]
	if slices.Contains(ranked[1:], cheapToStart) {
		out = append(out, cheapToStart)
	}
	return out
}

// Engines returns the engines this pool offers.
func (p *Pool) Engines() []string { return append([]string(nil), p.cfg.Engines...) }

// acquire takes a slot and makes sure it has a live child.
func (p *Pool) acquire(ctx context.Context) (*process, error) {
	var proc *process
	select {
	case proc = <-p.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closed:
		return nil, ErrPoolClosed
	}
	if proc != nil && proc.alive() {
		return proc, nil
	}
	if proc != nil {
		proc.discard()
		p.log.Warn("executor died while idle", "executor", proc.pid, "exit", proc.deathNote())
	}
	proc, err := p.spawn(ctx)
	if err != nil {
		p.slots <- nil
		return nil, err
	}
	return proc, nil
}

// release gives the slot back; a child that must not be reused is killed
// and a new one started in the background.
func (p *Pool) release(proc *process, healthy bool, runErr error) {
	if healthy {
		p.mu.Lock()
		closed := p.isClosed
		if !closed {
			p.slots <- proc
		}
		p.mu.Unlock()
		if closed { // Close has drained the slots: nobody else will reap it
			proc.discard()
		}
		return
	}
	proc.kill()
	switch KindOf(runErr) {
	case KindTimeout:
		p.log.Info("executor killed at task deadline", "executor", proc.pid)
	case KindCrash:
		p.log.Warn("executor crashed", "executor", proc.pid, "err", runErr)
	case KindInvalidModule: // only a compile past its limit makes an executor unhealthy
		p.log.Info("executor killed at the compile limit", "executor", proc.pid, "err", runErr)
	case KindMemory:
		if proc.diedOfMemory {
			p.log.Warn("executor died of its memory box", "executor", proc.pid, "err", runErr)
		}
	}
	p.replace(proc)
}

// replace reaps a killed child and fills its slot with a new one in the
// background, or with nil if that fails (the next Run then tries again and
// reports the error).
func (p *Pool) replace(old *process) {
	p.mu.Lock()
	closed := p.isClosed
	if !closed { // once closed, Close may be waiting: no new goroutines
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		old.discard()
		return
	}
	go func() {
		defer p.wg.Done()
		old.discard()
		proc, err := p.spawn(context.Background())
		if err != nil && !errors.Is(err, ErrPoolClosed) {
			p.log.Error("cannot start executor", "err", err)
		}
		p.mu.Lock()
		closed := p.isClosed
		if !closed {
			p.slots <- proc
		}
		p.mu.Unlock()
		if closed && proc != nil {
			proc.discard()
		}
	}()
}

func (p *Pool) isClosedNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isClosed
}

// Close kills every child and waits until all are reaped. Runs in progress
// return ErrPoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.isClosed {
		p.mu.Unlock()
		return nil
	}
	p.isClosed = true
	close(p.closed)
	duty := p.duty
	p.duty = nil
	live := make([]*process, 0, len(p.live))
	for proc := range p.live {
		live = append(live, proc)
	}
	p.mu.Unlock()
	for _, proc := range live {
		proc.kill()
	}
	duty.stop()
	p.drainSlots()
	p.wg.Wait()
	return nil
}

// drainSlots reaps the idle children; busy ones are reaped by their Run.
func (p *Pool) drainSlots() {
	for {
		select {
		case proc := <-p.slots:
			if proc != nil {
				proc.discard()
			}
		default:
			return
		}
	}
}
