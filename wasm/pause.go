package wasm

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Pausing executors. A Pool may stop its busy executor children (SIGSTOP)
// and continue them later (SIGCONT): to pause the grid while a volunteer
// uses the machine, or to cap its CPU use by stopping them part of every
// period (see Pool.Pause and Pool.SetCPULimit). A stopped task loses
// nothing: its memory and state wait in the stopped process. Time stopped
// does not count against the task's wall-clock timeout, on either side of
// the pipe: the parent counts each child's stopped time (stopClock) and
// shares it with the child through a small file (the child's fd 5), read by
// the child's deadline timer when it fires, so both deadlines count only
// time the task could run, and Result.Duration is run time, not time held.

// pauseFileFD is the child's descriptor of its stop clock file.
const pauseFileFD = 5

// stopClock counts the time one child spent stopped by its pool.
type stopClock struct {
	mu      sync.Mutex
	stopped bool
	since   time.Time
	total   time.Duration
	file    *os.File // shared with the child; nil if it could not be made
}

// newStopClock makes the file the child reads its stopped time from. It is
// unlinked at once where the OS allows: only the two processes hold it.
func newStopClock() *stopClock {
	f, err := os.CreateTemp("", "peergrid-executor-*")
	if err != nil {
		return &stopClock{}
	}
	if os.Remove(f.Name()) != nil {
		_ = f.Close()
		return &stopClock{}
	}
	c := &stopClock{file: f}
	c.publish()
	return c
}

// markStopped records a stop beginning now; it reports whether the child
// was running.
func (c *stopClock) markStopped(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.stopped, c.since = true, now
	return true
}

// markRunning ends a stop and publishes the new total to the child; call
// it before continuing the child, so the child reads the total when it runs.
// It reports whether the child was stopped.
func (c *stopClock) markRunning(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		return false
	}
	c.stopped = false
	c.total += now.Sub(c.since)
	c.publish()
	return true
}

// publish writes the total to the shared file (under c.mu).
func (c *stopClock) publish() {
	if c.file == nil {
		return
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], uint64(c.total)) // the child is this binary, on this machine
	_, _ = c.file.WriteAt(b[:], 0)
}

// stoppedFor is the child's stopped time up to now, a stop in progress
// included.
func (c *stopClock) stoppedFor(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.total
	if c.stopped {
		d += now.Sub(c.since)
	}
	return d
}

func (c *stopClock) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

func (c *stopClock) close() {
	if c.file != nil {
		_ = c.file.Close()
	}
}

// childStopClock is the child's side: how long its parent has had it
// stopped, read from fd 5 (0 if there is no such file), through a shared
// mapping where the OS has one (stopclock_unix.go).
type childStopClock struct {
	file *os.File
	mem  []byte // the file's first 8 bytes, mapped; nil: read the file
}

func openChildStopClock() childStopClock {
	c := childStopClock{file: os.NewFile(pauseFileFD, "stop-clock")}
	if c.file != nil {
		c.mem = mapStopClock(c.file)
	}
	return c
}

func (c childStopClock) stoppedFor() time.Duration {
	if c.mem != nil {
		return time.Duration(readStable(c.mem))
	}
	if c.file == nil {
		return 0
	}
	var b [8]byte
	if n, err := c.file.ReadAt(b[:], 0); n != len(b) || err != nil {
		return 0
	}
	return time.Duration(binary.NativeEndian.Uint64(b[:]))
}

// readStable reads the total from the mapping (page-aligned, so the load
// is one word) until two reads agree, in case the parent's write of it is
// in progress.
func readStable(mem []byte) uint64 {
	word := (*uint64)(unsafe.Pointer(&mem[0]))
	v := atomic.LoadUint64(word)
	for {
		again := atomic.LoadUint64(word)
		if again == v {
			return v
		}
		v = again
	}
}

// minRearm keeps a deadline timer that fires during a long stop from
// spinning on tiny re-arms.
const minRearm = 10 * time.Millisecond

// runningTimer calls f once d of running time has passed: time stopped
// (as stopped reports it, a growing total) does not count. It fires on the
// wall clock and re-arms itself for what is left when stops got in the way.
type runningTimer struct {
	mu      sync.Mutex
	t       *time.Timer
	start   time.Time
	base    time.Duration
	d       time.Duration
	stopped func() time.Duration
	f       func()
	done    bool
}

func afterRunning(d time.Duration, stopped func() time.Duration, f func()) *runningTimer {
	rt := &runningTimer{start: time.Now(), base: stopped(), d: d, stopped: stopped, f: f}
	rt.mu.Lock()
	rt.t = time.AfterFunc(d, rt.check)
	rt.mu.Unlock()
	return rt
}

// ran is the running time since the timer started.
func (rt *runningTimer) ran() time.Duration {
	return time.Since(rt.start) - (rt.stopped() - rt.base)
}

func (rt *runningTimer) check() {
	rt.mu.Lock()
	if rt.done {
		rt.mu.Unlock()
		return
	}
	if left := rt.d - rt.ran(); left > 0 {
		rt.t.Reset(max(left, minRearm))
		rt.mu.Unlock()
		return
	}
	rt.done = true
	rt.mu.Unlock()
	rt.f()
}

// Stop prevents the call; it reports false if f was already called (or is
// being called).
func (rt *runningTimer) Stop() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.done {
		return false
	}
	rt.done = true
	rt.t.Stop()
	return true
}
