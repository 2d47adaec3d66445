//go:build unix

package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// TestPool_TaskPausedLongerThanItsTimeoutFinishesWithItsResult: a task
// stopped mid-run for longer than its timeout (pause time does not count
// against it, on either side of the executor pipe) finishes after Resume
// with the result it gives unpaused, and its Duration leaves the pause out.
func TestPool_TaskPausedLongerThanItsTimeoutFinishesWithItsResult(t *testing.T) {
	const timeout, pause = 2 * time.Second, 3 * time.Second
	spin := put(t, wasmtest.SpinThenHello(200_000_000, "spun\n")) // ~0.1-0.3s of compute
	p := newPool(t, 1)
	// Unpaused, first, to know the result and that it fits its timeout.
	want, err := p.Run(testCtx(t), &Request{ModuleHash: spin, Limits: Limits{Timeout: timeout}})
	if err != nil || string(want.Stdout) != "spun\n" {
		t.Fatalf("unpaused: %q, %v", stdout(want), err)
	}
	marker := filepath.Join(t.TempDir(), "started")
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.Run(testCtx(t), &Request{ModuleHash: spin, Name: startedMarker + marker, Limits: Limits{Timeout: timeout}})
		done <- outcome{res, err}
	}()
	waitFor(t, "the task to start", func() bool { _, err := os.Stat(marker); return err == nil })
	p.Pause()
	paused := time.Now()
	// The pause itself is what is tested: it must outlast the timeout.
	select {
	case o := <-done:
		t.Fatalf("the task ended while paused: %q, %v", stdout(o.res), o.err)
	case <-time.After(pause):
	}
	p.Resume()
	o := <-done
	if o.err != nil || string(o.res.Stdout) != string(want.Stdout) || o.res.ExitCode != 0 {
		t.Fatalf("after a %v pause: %q exit %d, %v; want %q", time.Since(paused).Round(time.Millisecond), stdout(o.res), o.res.ExitCode, o.err, want.Stdout)
	}
	if o.res.Duration >= pause {
		t.Errorf("Duration %v counts the %v pause", o.res.Duration, pause)
	}
}

// TestPool_TaskStartedWhilePausedWaitsForResume: a run given to a paused
// pool waits, stopped, and its timeout does not run meanwhile.
func TestPool_TaskStartedWhilePausedWaitsForResume(t *testing.T) {
	hello := put(t, wasmtest.Hello("later\n", "", 0))
	p := newPool(t, 1)
	p.Pause()
	done := make(chan error, 1)
	var res *Result
	go func() {
		var err error
		res, err = p.Run(testCtx(t), &Request{ModuleHash: hello, Limits: Limits{Timeout: 300 * time.Millisecond}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a task ran on a paused pool: %q, %v", stdout(res), err)
	case <-time.After(time.Second): // over three timeouts: a deadline that ran would have fired
	}
	p.Resume()
	if err := <-done; err != nil || string(res.Stdout) != "later\n" {
		t.Fatalf("after resume: %q, %v", stdout(res), err)
	}
}

// TestPool_CloseKillsStoppedExecutors: a pool closed while paused leaves
// no stopped child behind.
func TestPool_CloseKillsStoppedExecutors(t *testing.T) {
	loop := put(t, wasmtest.LoopForever())
	p := newPool(t, 1)
	done := runInBackground(t, p, context.Background(), &Request{ModuleHash: loop})
	p.Pause()
	p.SetCPULimit(0.3)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("a run survived Close")
	}
}
