package wasm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// timerSlacks reads the timer slack of every thread of a process.
func timerSlacks(t *testing.T, pid int) map[string]time.Duration {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	slacks := map[string]time.Duration{}
	for _, task := range tasks {
		tid := filepath.Base(task)
		b, err := os.ReadFile("/proc/" + tid + "/timerslack_ns")
		if os.IsNotExist(err) {
			continue // the thread ended
		}
		if err != nil {
			t.Skipf("cannot read a thread's timer slack here: %v", err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		slacks[tid] = time.Duration(ns)
	}
	return slacks
}

// TestPool_EveryExecutorThreadHasTheExecutorsTimerSlack: whether pinned to
// a CPU, left to the kernel or at the lowest priority, every thread of an
// executor (the Go runtime's monitor among them) has executorTimerSlack,
// and no thread of the pool's own process keeps it.
func TestPool_EveryExecutorThreadHasTheExecutorsTimerSlack(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	hello := put(t, wasmtest.Hello("hi\n", "", 0))
	for name, cfg := range map[string]PoolConfig{
		"one per CPU": {Size: len(cpus)},
		"fewer":       {Size: max(len(cpus)-1, 1)},
		"lowest":      {Size: 1, LowestPriority: true},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTestPool(t, cfg)
			// A task, so that each executor's runtime has made its threads.
			if _, err := p.Run(testCtx(t), &Request{ModuleHash: hello}); err != nil {
				t.Fatal(err)
			}
			for _, pid := range p.pids() {
				for tid, slack := range timerSlacks(t, pid) {
					if slack != executorTimerSlack {
						t.Errorf("executor %d: thread %s has timer slack %v, want %v", pid, tid, slack, executorTimerSlack)
					}
				}
			}
			waitFor(t, "no thread of the pool's process with the executors' timer slack", func() bool {
				for _, slack := range timerSlacks(t, os.Getpid()) {
					if slack == executorTimerSlack {
						return false
					}
				}
				return true
			})
		})
	}
}

// maxExecutorSwitchesPerLongTask bounds the voluntary context switches
// (a thread going to sleep, to be woken later) of an executor's threads
// per task while every CPU runs an executor's ~35 ms CPU-bound task.
// Involuntary ones are left out: they count whoever else took the CPU.
// Measured here, 2 executors: 15-26 with Linux's default slack (39-49
// under the race detector), 4.0-5.5 with executorTimerSlack (5.0-5.5
// under the race detector).
const maxExecutorSwitchesPerLongTask = 10

// TestPool_ExecutorsBarelyWakeThemselvesUnderLongTasks: an executor
// running a long task in one cgo call must leave its CPU to the task. The
// Go runtime's monitor woke every ~100 µs through such a call, on the
// task's own CPU when executors are pinned, each wake-up a preemption.
func TestPool_ExecutorsBarelyWakeThemselvesUnderLongTasks(t *testing.T) {
	if !wasmtimeBuilt {
		t.Skip("no wasmtime in this build")
	}
	cpus, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	spin := put(t, wasmtest.SpinThenHello(60_000_000, "spun\n")) // ~35 ms of compute
	p := newTestPool(t, PoolConfig{Size: len(cpus)})
	ctx := testCtx(t)
	runs := func(n int) {
		var wg sync.WaitGroup
		errs := make(chan error, len(cpus))
		for range cpus {
			wg.Go(func() {
				for range n {
					if _, err := p.Run(ctx, &Request{ModuleHash: spin, Engine: EngineWasmtime}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	runs(2) // compiled and warm
	switches := func() (n int64) {
		for _, pid := range p.pids() {
			v, _ := contextSwitches(t, pid)
			n += v
		}
		return n
	}
	const perCaller = 10
	before := switches()
	runs(perCaller)
	perTask := float64(switches()-before) / float64(perCaller*len(cpus))
	t.Logf("%.1f voluntary context switches of executors' threads a task", perTask)
	if perTask > maxExecutorSwitchesPerLongTask {
		t.Fatalf("%.1f voluntary context switches of executors' threads a task, want at most %d", perTask, maxExecutorSwitchesPerLongTask)
	}
}

// contextSwitches sums the voluntary and involuntary context switches of
// every thread of a process.
func contextSwitches(t testing.TB, pid int) (voluntary, involuntary int64) {
	t.Helper()
	statuses, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range statuses {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, v, _ := strings.Cut(line, ":")
			c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch name {
			case "voluntary_ctxt_switches":
				voluntary += c
			case "nonvoluntary_ctxt_switches":
				involuntary += c
			}
		}
	}
	return voluntary, involuntary
}
