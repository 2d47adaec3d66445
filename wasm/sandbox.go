package wasm

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The sandbox contract that every engine presents byte for byte. It lives
// here, apart from any engine, so a second engine can reuse it.

// clockEpoch is what the task's wall clock reads first: 2024-01-01T00:00:00Z.
const clockEpoch = 1704067200 * int64(time.Second)

// clockTick is how far the task's clocks move at each reading. A clock that
// never moved would hang guests that wait for time to pass (spin until a
// deadline, Go's scheduler); a real clock would make results differ.
const clockTick = int64(time.Millisecond)

// taskClock is the deterministic clock a task sees: both clocks start at a
// fixed point, move clockTick per reading, and a sleep moves them at once
// instead of waiting. The same calls give the same readings on every run.
type taskClock struct{ elapsed atomic.Int64 }

func (c *taskClock) advance(d int64) int64 { return c.elapsed.Add(d) - d }

// walltime returns the realtime clock (seconds and nanoseconds since 1970).
func (c *taskClock) walltime() (sec int64, nsec int32) {
	t := clockEpoch + c.advance(clockTick)
	return t / int64(time.Second), int32(t % int64(time.Second))
}

// peekWalltime and peekNanotime read the clocks without moving them (an
// absolute poll deadline is measured against them).
func (c *taskClock) peekWalltime() (sec int64, nsec int32) {
	t := clockEpoch + c.elapsed.Load()
	return t / int64(time.Second), int32(t % int64(time.Second))
}

func (c *taskClock) peekNanotime() int64 { return c.elapsed.Load() }

// nanotime returns the monotonic clock, which starts at 0.
func (c *taskClock) nanotime() int64 { return c.advance(clockTick) }

// sleep moves both clocks by ns without waiting.
func (c *taskClock) sleep(ns int64) {
	if ns > 0 {
		c.advance(ns)
	}
}

// newTaskRandom returns the random bytes a task sees: ChaCha8 (a stable,
// documented stream) keyed by the seed in the first 8 bytes, little endian.
func newTaskRandom(seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	return rand.NewChaCha8(key)
}

// errOutputLimit is panicked by a cappedWriter to stop the module at once:
// returning an error from Write would only give the guest an errno, which a
// flooding guest ignores. wazero recovers host panics into the error the call
// returns; the writer's hit flag is what Run checks.
var errOutputLimit = errors.New("output limit reached")

// cappedWriter keeps up to max bytes and stops the module on the first byte
// beyond.
type cappedWriter struct {
	mu  sync.Mutex
	buf []byte
	max int64
	hit bool
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.write(p) {
		panic(errOutputLimit)
	}
	return len(p), nil
}

// write keeps what fits under the cap and reports whether p went past it.
// It never panics, for engines whose host calls must not (wasmer).
func (w *cappedWriter) write(p []byte) (hit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - int64(len(w.buf))
	if int64(len(p)) <= room {
		w.buf = append(w.buf, p...)
		return false
	}
	w.buf = append(w.buf, p[:room]...)
	w.hit = true
	return true
}

// snapshot returns what was written so far without copying: the bytes
// before len never change, even while the module keeps writing.
func (w *cappedWriter) snapshot() (b []byte, hit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf[:len(w.buf):len(w.buf)], w.hit
}

// sandbox is the per-run state an engine wires into the module.
type sandbox struct {
	stdout, stderr *cappedWriter
	clock          taskClock
	random         io.Reader
	memory         *memoryLimit

	entered    time.Time     // when _start was called
	moduleTime time.Duration // how long _start ran
}

// enter and leave bracket the module's own run (_start), so a Result can
// tell the time inside the module from the time the sandbox took around it.
func (s *sandbox) enter() { s.entered = time.Now() }
func (s *sandbox) leave() { s.moduleTime = time.Since(s.entered) }

func newSandbox(req *Request, heapMemory bool) *sandbox {
	max := req.Limits.maxOutput()
	return &sandbox{
		stdout: &cappedWriter{max: max},
		stderr: &cappedWriter{max: max},
		random: newTaskRandom(req.Seed),
		memory: newMemoryLimit(req.Limits.memoryBytes(), heapMemory),
	}
}

// outputError says which stream went past the cap, or nil.
func (s *sandbox) outputError() *TaskError {
	for _, w := range []struct {
		name string
		w    *cappedWriter
	}{{"stdout", s.stdout}, {"stderr", s.stderr}} {
		if _, hit := w.w.snapshot(); hit {
			return taskErrorf(KindOutput, "task wrote more than its %s limit to %s", formatBytes(uint64(w.w.max)), w.name)
		}
	}
	return nil
}

// result is what was written so far.
func (s *sandbox) result(exitCode int, d time.Duration) *Result {
	out, _ := s.stdout.snapshot()
	errOut, _ := s.stderr.snapshot()
	return &Result{ExitCode: exitCode, Stdout: out, Stderr: errOut, Duration: d, ModuleTime: s.moduleTime}
}

// runProbe lets an executor see a run in progress, so that at the deadline
// it can send back what the task wrote before the process is killed.
type runProbe struct {
	mu    sync.Mutex
	box   *sandbox
	start time.Time
}

func (p *runProbe) attach(box *sandbox, start time.Time) {
	p.mu.Lock()
	p.box, p.start = box, start
	p.mu.Unlock()
}

// partial is the run so far, or an empty result if it has not started.
func (p *runProbe) partial() *Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.box == nil {
		return &Result{ExitCode: -1}
	}
	return p.box.result(-1, time.Since(p.start))
}

// formatBytes writes a size for people: "8 MiB", "62.5 MiB", "100 bytes".
func formatBytes(n uint64) string {
	for _, u := range []struct {
		size uint64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			if n%u.size == 0 {
				return itoa(n/u.size) + " " + u.name
			}
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + " " + u.name
		}
	}
	return itoa(n) + " bytes"
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
