package wasm

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// processCPU is a process's CPU time so far, from /proc.
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, ok := processCPUTime(pid)
	if !ok {
		tb.Fatalf("cannot read the CPU time of process %d", pid)
	}
	return d
}

// BenchmarkPool_CPULimit50: one executor per core spins for 30 s with the
// pool's CPU limit at 50% of the machine; the executors' CPU time,
// measured from /proc, must stay within 50% +- 10% of the machine's (all
// cores) over the 30 s. Reported as pct_of_machine. The limit is a cap:
// where other programs leave the executors (at normal priority here) less
// than the share, they use less. PEERGRID_BENCH_SHARE and
// PEERGRID_BENCH_WINDOW change the share and the window.
//
//	go test -bench CPULimit -run '^$' -benchtime 1x ./wasm/
func BenchmarkPool_CPULimit50(b *testing.B) {
	share, window := 0.5, 30*time.Second
	if s, err := strconv.ParseFloat(os.Getenv("PEERGRID_BENCH_SHARE"), 64); err == nil {
		share = s
	}
	if w, err := time.ParseDuration(os.Getenv("PEERGRID_BENCH_WINDOW")); err == nil {
		window = w
	}
	loop := put(b, wasmtest.LoopForever())
	cores := runtime.NumCPU()
	p := newPool(b, cores)
	p.SetCPULimit(share)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range cores {
		go p.Run(ctx, &Request{ModuleHash: loop})
	}
	pids := p.PIDs()
	// Let every executor take its task before the window opens.
	deadline := time.Now().Add(time.Minute)
	for {
		p.mu.Lock()
		n := len(p.busy)
		p.mu.Unlock()
		if n == cores {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d executors busy", n, cores)
		}
		time.Sleep(time.Millisecond)
	}
	var pct float64
	b.ResetTimer()
	for range b.N {
		var before time.Duration
		for _, pid := range pids {
			before += processCPU(b, pid)
		}
		start := time.Now()
		time.Sleep(window) // the measurement window itself
		var after time.Duration
		for _, pid := range pids {
			after += processCPU(b, pid)
		}
		pct = 100 * float64(after-before) / float64(time.Since(start)*time.Duration(cores))
	}
	b.StopTimer()
	b.ReportMetric(pct, "pct_of_machine")
	switch {
	case pct > 100*share+10:
		b.Errorf("executors used %.1f%% of the machine's CPU with a %.0f%% limit; want %.0f%% +- 10%%: the limit does not hold", pct, 100*share, 100*share)
	case pct < 100*share-10:
		b.Errorf("executors used %.1f%% of the machine's CPU with a %.0f%% limit; want %.0f%% +- 10%% (other programs may have left them less: see the load average)", pct, 100*share, 100*share)
	}
}
