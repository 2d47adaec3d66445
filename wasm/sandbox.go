package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
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
// beyond. With a spill path, it keeps them in memory only up to spillAt
// bytes; past that it writes everything to the file at the spill path as
// it comes, so the output costs no memory.
type cappedWriter struct {
	mu  sync.Mutex
	buf []byte
	n   int64 // bytes kept, in buf or in the file
	max int64
	hit bool

	spillAt   int64
	spillPath string
	file      *os.File // the spill file, once spilled
	fileErr   error    // writing the spill file failed: the run stops
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.write(p) {
		panic(errOutputLimit)
	}
	return len(p), nil
}

// write keeps what fits under the cap and reports whether the run must
// stop: p went past the cap, or the spill file cannot be written. It never
// panics, for engines whose host calls must not (wasmer).
func (w *cappedWriter) write(p []byte) (stop bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fileErr != nil {
		return true
	}
	take, over := p, false
	if room := w.max - w.n; int64(len(p)) > room {
		take, over = p[:room], true
	}
	if w.file == nil && w.spillPath != "" && w.n+int64(len(take)) > w.spillAt {
		w.spill()
	}
	switch {
	case w.fileErr != nil:
		return true
	case w.file != nil:
		if _, err := w.file.Write(take); err != nil {
			w.fileErr = err
			return true
		}
	default:
		w.buf = append(w.buf, take...)
	}
	w.n += int64(len(take))
	if over {
		w.hit = true
	}
	return over
}

// spill moves what is kept in memory to the spill file, which takes all
// that follows (under w.mu).
func (w *cappedWriter) spill() {
	f, err := os.OpenFile(w.spillPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write(w.buf)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		w.fileErr = err
		return
	}
	w.file, w.buf = f, nil
}

// snapshot returns what was written so far without copying (nil once
// spilled): the bytes before len never change, even while the module
// keeps writing. n is how many bytes were kept.
func (w *cappedWriter) snapshot() (b []byte, n int64, spilled, hit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf[:len(w.buf):len(w.buf)], w.n, w.file != nil, w.hit
}

// close closes the spill file; what was written stays there.
func (w *cappedWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return nil
	}
	return w.file.Close()
}

// fileError is why the spill file could not be written, or nil.
func (w *cappedWriter) fileError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fileErr == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrStdoutFile, w.fileErr)
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
		stdout: &cappedWriter{max: max, spillPath: req.StdoutPath, spillAt: req.StdoutSpill},
		stderr: &cappedWriter{max: max},
		random: newTaskRandom(req.Seed),
		memory: newMemoryLimit(req.Limits.memoryBytes(), heapMemory),
	}
}

// close ends the run's use of files; an engine calls it once the module is done.
func (s *sandbox) close() { _ = s.stdout.close() }

// outputError says which stream went past the cap, or nil.
func (s *sandbox) outputError() *TaskError {
	for _, w := range []struct {
		name string
		w    *cappedWriter
	}{{"stdout", s.stdout}, {"stderr", s.stderr}} {
		if _, _, _, hit := w.w.snapshot(); hit {
			return taskErrorf(KindOutput, "task wrote more than its %s limit to %s", formatBytes(uint64(w.w.max)), w.name)
		}
	}
	return nil
}

// result is what was written so far.
func (s *sandbox) result(exitCode int, d time.Duration) *Result {
	out, n, spilled, _ := s.stdout.snapshot()
	errOut, _, _, _ := s.stderr.snapshot()
	return &Result{ExitCode: exitCode, Stdout: out, Stderr: errOut, Duration: d, ModuleTime: s.moduleTime, StdoutSize: n, StdoutSpilled: spilled}
}

// runProbe lets an executor see a run in progress, so that at the deadline
// it can send back what the task wrote before the process is killed.
// It also keeps the run's Duration to run time: stopped, if set, is how
// long the process has been stopped by its parent (a growing total).
type runProbe struct {
	mu      sync.Mutex
	box     *sandbox
	start   time.Time
	stopped func() time.Duration
	base    time.Duration // stopped() when the run started

	// deferTeardown asks the engine to leave the instance's teardown to
	// the executor, to run after the answer (teardown.go); teardowns are
	// what it left.
	deferTeardown bool
	teardowns     []func()
}

func (p *runProbe) attach(box *sandbox, start time.Time) {
	p.mu.Lock()
	p.box, p.start = box, start
	if p.stopped != nil {
		p.base = p.stopped()
	}
	p.mu.Unlock()
}

// started reports whether the module has been compiled and its run begun.
func (p *runProbe) started() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.box != nil
}

// ran is d, a wall-clock time since the run started, less the time the
// process was stopped since.
func (p *runProbe) ran(d time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped == nil || p.box == nil {
		return d
	}
	return max(d-(p.stopped()-p.base), 0)
}

// partial is the run so far, or an empty result if it has not started.
func (p *runProbe) partial() *Result {
	p.mu.Lock()
	box, start := p.box, p.start
	p.mu.Unlock()
	if box == nil {
		return &Result{ExitCode: -1}
	}
	return box.result(-1, p.ran(time.Since(start)))
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
