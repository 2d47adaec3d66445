package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// pids returns the process ids of the pool's live children.
func (p *Pool) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for proc := range p.live {
		pids = append(pids, proc.pid)
	}
	return pids
}

// runInBackground starts req on p and waits until its executor has it.
func runInBackground(t *testing.T, p *Pool, ctx context.Context, req *Request) <-chan error {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "started")
	req.Name = startedMarker + marker
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, req)
		done <- err
	}()
	waitFor(t, "the executor to receive the task", func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	return done
}

// waitFor polls cond until it holds or the test's deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPool_LoopIsStoppedAtTimeoutAndNextTaskRuns(t *testing.T) {
	loop := put(t, wasmtest.WriteThenLoop("started\n", "still going\n"))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	p := newPool(t, 1)
	before := p.pids()
	res, err := p.Run(testCtx(t), &Request{ModuleHash: loop, Limits: Limits{Timeout: 300 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	if err.Error() != "timeout: task ran past its 300ms limit" {
		t.Fatalf("err = %v", err)
	}
	// The child sent what the task wrote before the deadline.
	if res == nil || string(res.Stdout) != "started\n" || string(res.Stderr) != "still going\n" || res.ExitCode != -1 {
		t.Fatalf("got %+v", res)
	}
	res, err = p.Run(testCtx(t), &Request{ModuleHash: hello})
	if err != nil || string(res.Stdout) != "next\n" {
		t.Fatalf("next task: got %q, %v", stdout(res), err)
	}
	if after := p.pids(); len(after) != 1 || after[0] == before[0] {
		t.Fatalf("executors before %v, after %v: want the looping one replaced", before, after)
	}
}

func TestPool_CrashedExecutorIsKindCrashAndPoolKeepsWorking(t *testing.T) {
	hello := put(t, wasmtest.Hello("alive\n", "", 0))
	p := newPool(t, 1)
	res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Name: crashExecutorName})
	wantKind(t, err, KindCrash)
	if res != nil || !strings.Contains(err.Error(), "executor crashes on purpose") {
		t.Fatalf("got %+v, %v (want the child's panic in the message)", res, err)
	}
	res, err = p.Run(testCtx(t), &Request{ModuleHash: hello})
	if err != nil || string(res.Stdout) != "alive\n" {
		t.Fatalf("after the crash: got %q, %v", stdout(res), err)
	}
}

func TestPool_RunWaitsForAFreeExecutorUntilCtxIsDone(t *testing.T) {
	loop, hello := put(t, wasmtest.LoopForever()), put(t, wasmtest.Hello("", "", 0))
	p := newPool(t, 1)
	busy, cancelBusy := context.WithCancel(testCtx(t))
	done := runInBackground(t, p, busy, &Request{ModuleHash: loop})
	waiting, cancelWaiting := context.WithCancel(testCtx(t))
	cancelWaiting()
	if _, err := p.Run(waiting, &Request{ModuleHash: hello}); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting run: err = %v", err)
	}
	cancelBusy() // the caller gives up on the loop: its child is killed
	if err := <-done; !errors.Is(err, context.Canceled) || KindOf(err) != "" {
		t.Fatalf("abandoned run: err = %v", err)
	}
	if _, err := p.Run(testCtx(t), &Request{ModuleHash: hello}); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestNewPool_CommandThatIsNotAnExecutorFails(t *testing.T) {
	_, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules, Command: []string{"/bin/sh", "-c", "echo not an executor"}})
	if !errors.Is(err, ErrExecutor) || !strings.Contains(err.Error(), "MaybeRunExecutor") {
		t.Fatalf("err = %v", err)
	}
}

// An executor whose main forgot MaybeRunExecutor must not start executors
// of its own, recursively.
func TestNewPool_RefusesInsideAnExecutor(t *testing.T) {
	t.Setenv(executorEnv, "1")
	if _, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules}); !errors.Is(err, ErrExecutor) {
		t.Fatalf("err = %v", err)
	}
}
