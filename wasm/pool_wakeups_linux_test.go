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
