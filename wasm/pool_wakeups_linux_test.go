package wasm

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// maxWakeupsPerLongTask bounds the wake-ups of this process per task while
// both executors run CPU-bound tasks of ~35 ms back to back. Measured
// here: 4.3-6.6 with answers awaited on the network poller; 25-30 with
// blocking reads, which keep the runtime's sysmon thread ticking every
// 20-40 us while a P is held in a read. Twice that under the race
// detector (wakeupsAllowance), where the poller's runs measured 4.8-7.8.
const maxWakeupsPerLongTask = 12

// TestPool_LongTasksBarelyWakeTheProcess: a worker whose executors all run
// CPU-bound tasks must leave the CPU to them. Each wake-up of one of its
// threads (a context switch, 10-20 us of CPU here) is taken from a busy
// executor: at a few milliseconds a task, dozens of them per task were a
// tenth of a core.
func TestPool_LongTasksBarelyWakeTheProcess(t *testing.T) {
	spin := put(t, wasmtest.SpinThenHello(60_000_000, "spun\n")) // ~35 ms of compute
	p := newPool(t, 2)
	ctx := testCtx(t)
	const perCaller = 25
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	runs := func(n int) {
		for range 2 {
			wg.Go(func() {
				for range n {
					if _, err := p.Run(ctx, &Request{ModuleHash: spin}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
	}
	runs(2) // both executors compiled and warm
	before := voluntarySwitches(t)
	runs(perCaller)
	woke := voluntarySwitches(t) - before
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perTask := float64(woke) / (2 * perCaller)
	t.Logf("%.1f wake-ups a task", perTask)
	if limit := maxWakeupsPerLongTask * wakeupsAllowance; perTask > float64(limit) {
		t.Fatalf("%.1f wake-ups of this process a task, want at most %d", perTask, limit)
	}
}

func voluntarySwitches(t *testing.T) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Nvcsw
}

// TestPool_TinyTasksAwaitAnswersInABlockingRead: after a module's run that
// was tiny, its next answer is awaited in a blocking read (no wake-up of
// the runtime's poller per task); after a long one, through the poller
// (no P held for the task). The mode follows each module's own last run.
// (Under the race detector the executor is slow enough that even the tiny
// module's runs may be long: the mode is checked against the run times.)
func TestPool_TinyTasksAwaitAnswersInABlockingRead(t *testing.T) {
	tiny := put(t, wasmtest.Hello("hi\n", "", 0))
	spin := put(t, wasmtest.SpinThenHello(25_000_000, "spun\n")) // ~15 ms
	p := newPool(t, 1)
	ctx := testCtx(t)
	run := func(module string) time.Duration {
		t.Helper()
		// One engine: an auto pool's trials of another engine start cold,
		// and a cold first run is long.
		res, err := p.Run(ctx, &Request{ModuleHash: module, Engine: EngineWazero})
		if err != nil {
			t.Fatal(err)
		}
		return res.Duration
	}
	run(tiny) // its first run is cold, however tiny the module
	for _, module := range []string{tiny, spin, tiny, spin} {
		last := run(module) // the module's last run before the next,
		run(module)         // which is awaited as last says
		if got, want := answersBlock(t, p), last < blockingReadBelow; got != want {
			t.Fatalf("module %.8s after a run of %v: answer awaited in a blocking read = %v, want %v", module, last, got, want)
		}
		if module == spin && answersBlock(t, p) {
			t.Fatal("a long task's answer is awaited in a blocking read")
		}
	}
}

// answersBlock reports whether the pool's one executor's answer pipe is in
// blocking mode.
func answersBlock(t *testing.T, p *Pool) bool {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for proc := range p.live {
		rc, err := proc.stdout.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags uintptr
		rc.Control(func(fd uintptr) { flags, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0) })
		return flags&syscall.O_NONBLOCK == 0
	}
	t.Fatal("no executor")
	return false
}

// maxWakeupsPerShortTask bounds the wake-ups of this process per task of
// ~1 ms run back to back through one executor, whose answers are awaited
// on the poller. Measured here: 0.9-1.1, the one wake-up at the answer;
// 2.3-2.6 when the request's write and the answer's read went through the
// os.File, each system call waking the runtime's monitor thread (sysmon)
// from its deep sleep (pipeEnd).
const maxWakeupsPerShortTask = 1.6

// TestPool_RoundTripWakesTheProcessOnce: a task's round trip through an
// executor wakes this process once, when the answer comes, and not its
// runtime's monitor thread besides.
func TestPool_RoundTripWakesTheProcessOnce(t *testing.T) {
	spin := put(t, wasmtest.SpinThenHello(2_000_000, "spun\n")) // ~1 ms of compute
	p := newPool(t, 1)
	ctx := testCtx(t)
	req := &Request{ModuleHash: spin, Engine: EngineWazero}
	for range 5 { // compiled, warm, and its answers awaited on the poller
		if _, err := p.Run(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if answersBlock(t, p) {
		t.Fatal("a ~1 ms task's answer is awaited in a blocking read; this test wants the poller")
	}
	const tasks = 200
	before := voluntarySwitches(t)
	for range tasks {
		if _, err := p.Run(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	perTask := float64(voluntarySwitches(t)-before) / tasks
	t.Logf("%.2f wake-ups a task", perTask)
	if limit := maxWakeupsPerShortTask * wakeupsAllowance; perTask > limit {
		t.Fatalf("%.2f wake-ups of this process a task, want at most %.1f", perTask, limit)
	}
}
