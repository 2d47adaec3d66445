package wasm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// Environment of an executor child.
const (
	executorEnv        = "PEERGRID_EXECUTOR" // "1" in an executor child
	executorCacheEnv   = "PEERGRID_EXECUTOR_CACHE_DIR"
	executorModuleEnv  = "PEERGRID_EXECUTOR_MODULE_DIR"
	executorCompileEnv = "PEERGRID_EXECUTOR_COMPILE_TIMEOUT" // PoolConfig.CompileTimeout, as a Go duration
)

// gcBallastBytes is a never-touched allocation an executor holds so that
// its garbage collector runs every ~16 MiB of garbage, not every few MiB:
// an executor's live heap is small, and a tiny task's instantiation makes
// tens of KiB of garbage, so with the default pacing the collector
// (marking, sweeping, returning pages to the kernel and faulting them back)
// took 18% of an executor's CPU on the tiny example. It holds no pointers
// and is never written, so it is neither scanned nor resident; it counts
// in the memory box's base (VmData), where it belongs. Raising GOGC
// instead would also multiply the heap of a big compile, for which the
// box's allowance is sized at the default.
const gcBallastBytes = 16 << 20

var gcBallast []byte

// executorTestHook, if set (by tests, before MaybeRunExecutor), is called by
// the executor before each run; tests use it to crash an executor. Before
// it does anything, it must call liftBox: what a test makes an executor do
// there is no task's, and must not be charged to the task's memory box.
// (Lifting the box for every task, hook or not, would add two system
// calls a task to what the tests and benchmarks measure.)
var executorTestHook func(req *Request, liftBox func())

// MaybeRunExecutor turns this process into an executor if it was started as
// one (PEERGRID_EXECUTOR=1): it serves run requests on fds 3 and 4 until
// the parent closes fd 3, then exits. Otherwise it returns at once. Call it first in
// main, and in TestMain of every package whose tests use a Pool, because
// the Pool's children are the binary itself.
func MaybeRunExecutor() {
	if os.Getenv(executorEnv) != "1" {
		return
	}
	os.Exit(runExecutor())
}

func runExecutor() int {
	requests, answers := os.NewFile(3, "requests"), os.NewFile(4, "answers")
	if requests == nil || answers == nil {
		fmt.Fprintln(os.Stderr, "peergrid executor: no protocol pipes on fds 3 and 4")
		return 1
	}
	// The watchdog must be able to run beside a task spinning on one thread.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	gcBallast = make([]byte, gcBallastBytes)
	compileLimit, err := time.ParseDuration(os.Getenv(executorCompileEnv))
	if err != nil {
		compileLimit = DefaultCompileTimeout
	}
	ex := &executorServer{
		cfg: EngineConfig{
			CacheDir:  os.Getenv(executorCacheEnv),
			ModuleDir: ModuleDir(os.Getenv(executorModuleEnv)),
			Logger:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
		},
		engines:      map[string]Engine{},
		sizes:        map[string]int64{},
		out:          &frameWriter{w: answers},
		clock:        openChildStopClock(),
		compileLimit: compileLimit,
	}
	stopProfile := startExecutorProfile(os.Getenv(ExecutorProfileEnv))
	defer stopProfile()
	if err := ex.serve(bufio.NewReaderSize(requests, 64<<10)); err != nil {
		fmt.Fprintln(os.Stderr, "peergrid executor:", err)
		return 1
	}
	return 0
}

// executorServer runs one request at a time for its parent, on the engine
// the request names (made on first use).
type executorServer struct {
	cfg     EngineConfig
	engines map[string]Engine
	out     *frameWriter
	enc     encoder
	clock   childStopClock // time the parent had this process stopped

	compileLimit time.Duration // see PoolConfig.CompileTimeout; 0 means none
	cpuMark      time.Duration // CPU time at the end of the last task, if it was measured (cpuSince)
	box          executorBox
	sizes        map[string]int64 // module sizes, for the box
}

// moduleSize is the size of a module's file, remembered (modules never
// change): the box's allowance depends on it.
func (ex *executorServer) moduleSize(hash string) int64 {
	if n, ok := ex.sizes[hash]; ok {
		return n
	}
	if len(ex.sizes) >= maxChooserModules {
		clear(ex.sizes)
	}
	n, _ := ex.cfg.ModuleDir.size(hash)
	ex.sizes[hash] = n
	return n
}

// engine returns the named engine; "" and "auto" mean wazero (the pool
// resolves "auto" before it sends a request).
func (ex *executorServer) engine(name string) (Engine, error) {
	if name == "" || name == EngineAuto {
		name = EngineWazero
	}
	if eng, ok := ex.engines[name]; ok {
		return eng, nil
	}
	ex.box.lift() // making an engine is not the task's doing
	eng, err := NewEngine(context.Background(), name, ex.cfg)
	if err != nil {
		return nil, err
	}
	ex.engines[name] = eng
	ex.box.stale = true
	return eng, nil
}

// serve answers requests until the parent closes the request pipe. It reads them on
// this goroutine: a reader goroutine would add a thread wake-up per task.
func (ex *executorServer) serve(in *bufio.Reader) error {
	encodeHello(&ex.enc, os.Getpid())
	if err := ex.out.write(&ex.enc); err != nil {
		return err
	}
	go exitWithParent(os.Getppid())
	for {
		if n, ok := peekFrameSize(in); ok && n > liftAbove {
			ex.box.lift()
		}
		f, err := readFrame(in)
		if errors.Is(err, io.EOF) {
			return nil // the parent is done with us
		}
		if err != nil {
			return err
		}
		req, err := decodeRequest(f)
		if err != nil {
			return err
		}
		if err := ex.handle(req); err != nil {
			return err
		}
	}
}

// exitWithParent ends an executor whose parent died without killing it
// (it would otherwise run its task to the end, possibly never).
func exitWithParent(ppid int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			os.Exit(0)
		}
	}
}

// handle runs one request. With a timeout, a watchdog sends back what the
// task wrote so far when the deadline passes, since nothing can stop the
// running module; the parent then kills this process. Likewise a second
// watchdog answers if the module is still compiling at the compile limit.
// Whichever answers first answers alone. Time the parent had this process
// stopped counts neither against the deadline nor in the result's Duration.
// The task, compile included, runs in its memory box (box.go), which stays
// on after it (executorBox); making an engine, which is not the task's
// doing, does not. The instance is torn down after the answer is sent
// (teardown.go), before the next request is read.
func (ex *executorServer) handle(req *Request) error {
	if executorTestHook != nil {
		executorTestHook(req, ex.box.lift)
	}
	var answered atomic.Bool
	// A trial of an engine (measureCPU) tears down before its CPU time is
	// taken, so that no other engine's next task is charged for it.
	probe := &runProbe{stopped: ex.clock.stoppedFor, deferTeardown: !req.measureCPU}
	stopWatchdogs := ex.watch(req, probe, &answered)
	res, err := ex.run(req, probe)
	stopWatchdogs()
	if !answered.CompareAndSwap(false, true) {
		select {} // a watchdog answered; the parent kills us
	}
	out, errOut := encodeResponse(&ex.enc, res, err, false)
	werr := ex.out.write(&ex.enc, out, errOut)
	probe.finish()
	return werr
}

// watch starts req's watchdogs (see handle); the first to fire answers,
// unless answered is set already. The returned func stops them.
func (ex *executorServer) watch(req *Request, probe *runProbe, answered *atomic.Bool) (stop func()) {
	answerOnce := func(res *Result, err error) {
		if answered.CompareAndSwap(false, true) {
			var e encoder
			out, errOut := encodeResponse(&e, res, err, true)
			_ = ex.out.write(&e, out, errOut)
		}
	}
	var timers []*runningTimer
	if req.Limits.Timeout > 0 {
		timers = append(timers, afterRunning(req.Limits.Timeout, ex.clock.stoppedFor, func() {
			answerOnce(probe.partial(), timeoutError(req.Limits.Timeout))
		}))
	}
	if ex.compileLimit > 0 {
		timers = append(timers, afterRunning(ex.compileLimit, ex.clock.stoppedFor, func() {
			if !probe.started() {
				answerOnce(nil, compileTimeoutError(ex.compileLimit))
			}
		}))
	}
	return func() {
		for _, t := range timers {
			t.Stop()
		}
	}
}

// run runs req on its engine, in the task's memory box, and measures the
// executor's CPU time for it if asked to.
func (ex *executorServer) run(req *Request, probe *runProbe) (*Result, error) {
	eng, err := ex.engine(req.Engine)
	if err != nil {
		return nil, err
	}
	ex.box.enter(req.Limits.memoryBytes(), ex.moduleSize(req.ModuleHash))
	since := ex.cpuSince(req.measureCPU)
	res, err := eng.Run(withProbe(context.Background(), probe), req)
	var cpu time.Duration
	if req.measureCPU {
		ex.cpuMark = selfCPUTime()
		cpu = ex.cpuMark - since
	}
	if res != nil {
		res.Duration = probe.ran(res.Duration)
		res.CPUTime = cpu
	}
	return res, err
}

// cpuSince is where a task's CPU time starts: at the end of the previous
// task, if that one was measured too, so that what the executor does for a
// task outside the engine's run counts (answering, tearing the instance
// down, reading the request, collecting the garbage and running the
// finalizers the runs leave: on the tiny example they made wasmtime's
// tasks cost twice wazero's, though its runs alone cost the same); else
// now. 0 if not measuring.
func (ex *executorServer) cpuSince(measure bool) time.Duration {
	if !measure {
		ex.cpuMark = 0
		return 0
	}
	if ex.cpuMark > 0 {
		return ex.cpuMark
	}
	return selfCPUTime()
}

// compileTimeoutError is the failure of a task whose module was still
// compiling at the compile limit.
func compileTimeoutError(limit time.Duration) *TaskError {
	return taskErrorf(KindInvalidModule, "compiling the module took longer than the %s limit on compiling", limit)
}
