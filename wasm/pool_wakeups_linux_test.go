package wasm

import (
	"sync"
	"syscall"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// maxWakeupsPerLongTask bounds the wake-ups of this process per task while
// both executors run CPU-bound tasks of ~15 ms back to back. Measured
// here: 3.0-3.3 with answers read through the network poller; 10-14 with
// blocking reads, which keep the runtime's sysmon thread ticking every
// 20-40 us while a P is held in a read.
const maxWakeupsPerLongTask = 6

// TestPool_LongTasksBarelyWakeTheProcess: a worker whose executors all run
// CPU-bound tasks must leave the CPU to them. Each wake-up of one of its
// threads (a context switch, 10-20 us of CPU here) is taken from a busy
// executor: at a few milliseconds a task, dozens of them per task were a
// tenth of a core.
func TestPool_LongTasksBarelyWakeTheProcess(t *testing.T) {
	spin := put(t, wasmtest.SpinThenHello(25_000_000, "spun\n")) // ~15 ms of compute
	p := newPool(t, 2)
	ctx := testCtx(t)
	for range 4 { // compiled and warm
		if _, err := p.Run(ctx, &Request{ModuleHash: spin}); err != nil {
			t.Fatal(err)
		}
	}
	const perCaller = 30
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	before := voluntarySwitches(t)
	for range 2 {
		wg.Go(func() {
			for range perCaller {
				if _, err := p.Run(ctx, &Request{ModuleHash: spin}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	woke := voluntarySwitches(t) - before
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perTask := float64(woke) / (2 * perCaller)
	t.Logf("%.1f wake-ups a task", perTask)
	if perTask > maxWakeupsPerLongTask {
		t.Fatalf("%.1f wake-ups of this process a task, want at most %d", perTask, maxWakeupsPerLongTask)
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
func TestPool_TinyTasksAwaitAnswersInABlockingRead(t *testing.T) {
	tiny := put(t, wasmtest.Hello("hi\n", "", 0))
	spin := put(t, wasmtest.SpinThenHello(25_000_000, "spun\n")) // ~15 ms
	p := newPool(t, 1)
	ctx := testCtx(t)
	run := func(module string) {
		t.Helper()
		// One engine: an auto pool's trials of another engine start cold,
		// and a cold first run is long.
		if _, err := p.Run(ctx, &Request{ModuleHash: module, Engine: EngineWazero}); err != nil {
			t.Fatal(err)
		}
	}
	run(tiny) // its first run is cold, however tiny the module
	for _, step := range []struct {
		module   string
		blocking bool
	}{{tiny, true}, {spin, false}, {tiny, true}, {spin, false}} {
		run(step.module) // awaited as its module's last run says
		run(step.module) // sets the mode checked below before this run
		if got := answersBlock(t, p); got != step.blocking {
			t.Fatalf("module %.8s: answer awaited in a blocking read = %v, want %v", step.module, got, step.blocking)
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
