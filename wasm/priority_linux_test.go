package wasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// schedIdle is Linux's SCHED_IDLE policy number.
const schedIdle = 5

// threadPriorities reads the nice value and scheduling policy of every
// thread of a process from /proc.
func threadPriorities(t *testing.T, pid int) (nice, policy []int) {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		// Fields after "(comm)": [0] is field 3 (state); nice is field 19,
		// policy field 41.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		n, _ := strconv.Atoi(f[19-3])
		p, _ := strconv.Atoi(f[41-3])
		nice, policy = append(nice, n), append(policy, p)
	}
	return nice, policy
}

// TestPool_LowestPriorityExecutorsRunAtNice19AndSchedIdle: every thread of
// every executor of a LowestPriority pool has nice 19 and SCHED_IDLE, and
// the worker process itself keeps its own priority.
func TestPool_LowestPriorityExecutorsRunAtNice19AndSchedIdle(t *testing.T) {
	p, err := NewPool(context.Background(), PoolConfig{Size: 2, CacheDir: testCacheDir, ModuleDir: testModules, LowestPriority: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pids := p.PIDs()
	if len(pids) != 2 {
		t.Fatalf("%d executors", len(pids))
	}
	for _, pid := range pids {
		nice, policy := threadPriorities(t, pid)
		for i := range nice {
			if nice[i] != lowestNice || policy[i] != schedIdle {
				t.Errorf("executor %d: a thread has nice %d policy %d, want %d and SCHED_IDLE (%d)", pid, nice[i], policy[i], lowestNice, schedIdle)
			}
		}
	}
	// The thread that started them was lowered, and ends with its
	// goroutine: none of the worker's own stays at the lowest priority.
	waitFor(t, "no thread of the worker itself at the lowest priority", func() bool {
		nice, policy := threadPriorities(t, os.Getpid())
		for i := range nice {
			if nice[i] == lowestNice || policy[i] == schedIdle {
				return false
			}
		}
		return true
	})
}
