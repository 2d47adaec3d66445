//go:build unix

package wasm

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// Tests that signal processes by pid.

func TestPool_ExecutorKilledUnderATaskIsKindCrash(t *testing.T) {
	loop, hello := put(t, wasmtest.LoopForever()), put(t, wasmtest.Hello("alive\n", "", 0))
	p := newPool(t, 1)
	victim := p.pids()[0]
	done := runInBackground(t, p, testCtx(t), &Request{ModuleHash: loop})
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	wantKind(t, err, KindCrash)
	if !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("err = %v, want how the child died", err)
	}
	if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello}); err != nil || string(res.Stdout) != "alive\n" {
		t.Fatalf("after the kill: got %q, %v", stdout(res), err)
	}
}

func TestPool_CloseLeavesNoChildProcessesOrGoroutines(t *testing.T) {
	loop := put(t, wasmtest.LoopForever())
	shared(t) // so its goroutines are already counted
	goroutines := runtime.NumGoroutine()
	p := newPool(t, 2)
	done := runInBackground(t, p, testCtx(t), &Request{ModuleHash: loop})
	pids := p.pids()
	if len(pids) != 2 {
		t.Fatalf("pool has %d children, want 2", len(pids))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("run in progress: err = %v, want ErrPoolClosed", err)
	}
	for _, pid := range pids {
		// ESRCH: no such process, not even a zombie, so it was reaped too.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	if left := p.pids(); len(left) != 0 {
		t.Errorf("children %v still registered", left)
	}
	if _, err := p.Run(testCtx(t), &Request{ModuleHash: loop}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("run after Close: err = %v", err)
	}
	// Timer callbacks that killed children may still be returning.
	waitFor(t, "the pool's goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
}
