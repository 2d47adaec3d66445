package wasm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// threadCPUs is, for every thread of process pid, the CPUs it may run on.
func threadCPUs(t *testing.T, pid int) [][]int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // it has just exited (a killed executor, still listed until replaced): no thread is pinned
	}
	if err != nil {
		t.Fatal(err)
	}
	var all [][]int
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			t.Fatal(err)
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // the thread has just ended
		}
		var cpus []int
		for cpu := 0; len(cpus) < set.Count(); cpu++ {
			if set.IsSet(cpu) {
				cpus = append(cpus, cpu)
			}
		}
		all = append(all, cpus)
	}
	return all
}

// pinnedCPU is the one CPU every thread of pid is bound to, or -1.
func pinnedCPU(t *testing.T, pid int) int {
	t.Helper()
	cpu := -1
	for _, cpus := range threadCPUs(t, pid) {
		if len(cpus) != 1 || (cpu != -1 && cpus[0] != cpu) {
			return -1
		}
		cpu = cpus[0]
	}
	return cpu
}

// executorCPUsNow maps each live executor to the CPU it is pinned to.
func executorCPUsNow(t *testing.T, p *Pool) map[int]int {
	t.Helper()
	got := map[int]int{}
	for _, pid := range p.pids() {
		got[pid] = pinnedCPU(t, pid)
	}
	return got
}

// wantOnePerCPU fails unless the executors are pinned one to each of cpus.
func wantOnePerCPU(t *testing.T, got map[int]int, cpus []int) {
	t.Helper()
	var pinned []int
	for _, cpu := range got {
		pinned = append(pinned, cpu)
	}
	slices.Sort(pinned)
	if !slices.Equal(pinned, cpus) {
		t.Fatalf("executors' CPUs %v (pid: cpu, -1 unpinned), want one on each of %v", got, cpus)
	}
}

// One executor per CPU: each is pinned, all its threads, to a CPU of its
// own, and one that replaces a killed executor takes the CPU it left.
func TestPool_OneExecutorPerCPUArePinnedOneToEach(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) < 2 {
		t.Skipf("needs 2 CPUs or more: %v, %v", cpus, err)
	}
	needEngine(t, EngineWasmtime)
	p := newTestPool(t, PoolConfig{Size: len(cpus), Engines: []string{EngineWasmtime}})
	hello := put(t, wasmtest.Hello("hi\n", "", 0))
	if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello}); err != nil || string(res.Stdout) != "hi\n" {
		t.Fatalf("got %+v, %v", res, err)
	}
	started := waitOnePerCPU(t, p, cpus, nil, "the pool started")

	loop := put(t, wasmtest.LoopForever())
	_, err = p.Run(testCtx(t), &Request{ModuleHash: loop, Limits: Limits{Timeout: 200 * time.Millisecond}})
	wantKind(t, err, KindTimeout) // its executor is killed and replaced
	waitOnePerCPU(t, p, cpus, started, "one was killed")
}

// waitOnePerCPU polls, for up to a minute, until the pool lists an
// executor per CPU, each pinned to one CPU (a killed one stays listed until
// its replacement is, and reads as pinned while it is a zombie; one that was
// slow to start under a loaded CI run was replaced too) and, when before
// is given, not all of them executors of before (one was replaced); then
// checks that very listing is pinned one to each of cpus, and returns it.
// (It checked a second listing once, which a killed executor reaped in
// between read as unpinned.)
func waitOnePerCPU(t *testing.T, p *Pool, cpus []int, before map[int]int, after string) map[int]int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	replaced := func(got map[int]int) bool {
		if before == nil {
			return true
		}
		for pid := range got {
			if _, old := before[pid]; !old {
				return true
			}
		}
		return false
	}
	got := executorCPUsNow(t, p)
	for len(got) != len(cpus) || slices.Contains(mapValues(got), -1) || !replaced(got) {
		if time.Now().After(deadline) {
			t.Fatalf("executors %v a minute after %s", got, after)
		}
		time.Sleep(10 * time.Millisecond) // polling for the replacement
		got = executorCPUsNow(t, p)
	}
	wantOnePerCPU(t, got, cpus)
	return got
}

func mapValues(m map[int]int) []int {
	var v []int
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

// Fewer executors than CPUs, or executors at the lowest priority, are left
// to the kernel: they may run on every CPU this process may.
func TestPool_ExecutorsNotOnePerCPUOrAtLowestPriorityAreNotPinned(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) < 2 {
		t.Skipf("needs 2 CPUs or more: %v, %v", cpus, err)
	}
	for name, cfg := range map[string]PoolConfig{
		"fewer":  {Size: len(cpus) - 1},
		"lowest": {Size: len(cpus), LowestPriority: true},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTestPool(t, cfg)
			for _, pid := range p.pids() {
				for _, threadCPUs := range threadCPUs(t, pid) {
					if !slices.Equal(threadCPUs, cpus) {
						t.Fatalf("executor %d has a thread on %v, want %v", pid, threadCPUs, cpus)
					}
				}
			}
		})
	}
}
