package wasm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// warmUpTime is how long a child must have run a module on an engine,
// after its first run, before its runs measure the engine (warmingUp).
const warmUpTime = 25 * time.Millisecond

// stderrTail is how much of an executor's stderr is kept for crash reports.
const stderrTail = 4 << 10

// process is the parent's handle on one executor child. Only the goroutine
// holding it (Pool.Run, or a spawn) talks to it: that goroutine reads the
// child's answers itself, with no reader goroutine in between, because on
// this path every goroutine hand-off costs a thread wake-up. Anything that
// must interrupt the read (a deadline, a cancelled ctx, Pool.Close) kills
// the child, which ends the read.
type process struct {
	cmd     *exec.Cmd
	pid     int
	log     *slog.Logger
	in      *os.File     // the child's request pipe (its fd 3)
	out     *frameWriter // frames to in
	stdout  *os.File     // the child's answer pipe (its fd 4)
	answers *pipeEnd     // reads stdout (br reads from it)
	br      *bufio.Reader
	exited  chan struct{} // closed once the child is reaped and its stderr drained

	clock       *stopClock // time stopped by the pool (see pause.go)
	killOnce    sync.Once
	discardOnce sync.Once
	enc         encoder
	batch       []byte        // the frames of a batch (Pool.RunBatch)
	batchBytes  int           // how many bytes of frames may wait behind a batch's first (batchBytes)
	pace        time.Duration // the executor's time per task of a batch, as last learned (answerPacer)
	fills       int           // reads of batch answers that found none read ahead (answerPacer), for tests
	waitErr     error         // set before exited is closed

	tailMu sync.Mutex
	tail   []byte
	signs  deathSigns // what its stderr says of how it died

	warmth map[string]warmth // per engine and module, what it ran (see warmingUp)
	pin    trialStreak       // the engine it runs a module's trials on (Pool.streak)

	startRSS     uint64    // resident memory once ready; 0 if unknown
	rssCheckedAt time.Time // when the pool last read its resident memory
	diedOfMemory bool      // it died of its memory box under a task (set by run)
}

// startProcess starts an executor child, at the lowest CPU priority if
// lowest. goroutines counts the two goroutines that drain its stderr and
// reap it; they end once it exits.
func startProcess(command []string, env []string, log *slog.Logger, goroutines *sync.WaitGroup, lowest bool) (*process, error) {
	var files [6]*os.File // in r/w, out r/w, err r/w
	for i := 0; i < len(files); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(files[:i]...)
			return nil, err
		}
		files[i], files[i+1] = r, w
	}
	inR, inW, outR, outW, errR, errW := files[0], files[1], files[2], files[3], files[4], files[5]
	cmd := exec.Command(command[0], command[1:]...)
	// Requests on fd 3, answers on fd 4, the stop clock on fd 5; stdin is /dev/null.
	cmd.Env, cmd.Stdout, cmd.Stderr = env, errW, errW
	clock := newStopClock()
	cmd.ExtraFiles = []*os.File{inR, outW}
	if clock.file != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, clock.file)
	}
	var err error
	var warning string
	if lowest {
		warning, err = startLowest(cmd)
	} else {
		err = startWithTimerSlack(cmd)
	}
	closeAll(inR, outW, errW) // the child holds its own copies
	if err != nil {
		closeAll(inW, outR, errR)
		clock.close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrExecutor, command[0], err)
	}
	if warning != "" {
		log.Warn(warning)
	}
	answers := newPipeEnd(outR)
	p := &process{
		cmd: cmd, pid: cmd.Process.Pid, log: log.With("executor", cmd.Process.Pid),
		in: inW, out: &frameWriter{w: newPipeEnd(inW)}, stdout: outR, answers: answers, br: bufio.NewReaderSize(answers, 64<<10),
		exited: make(chan struct{}), clock: clock, batchBytes: batchBytes(pipeCapacity(inW)),
	}
	drained := make(chan struct{})
	goroutines.Add(2)
	go func() { defer goroutines.Done(); defer close(drained); p.readStderr(errR) }()
	go func() { defer goroutines.Done(); p.reap(drained) }()
	return p, nil
}

// blockingReadBelow is how short a module's last run on an executor must
// have been for its next answer to be awaited in a blocking read (see
// awaitAnswerAs).
const blockingReadBelow = 200 * time.Microsecond

// awaitAnswerAs sets how the answer to a run of module on engine is
// awaited. After a run under blockingReadBelow, in a blocking read: the
// reader sleeps in read and wakes when the child writes, without a wake-up
// of the runtime's poller (a tenth more tasks a second for tiny ones).
// Otherwise through the poller, holding no P: a blocking read holds a P
// in a syscall for the whole task, so the runtime's sysmon thread never
// sleeps deeply while tasks run; it ticked every 20-40 us and took the P
// back past 10 ms, 20-60 wake-ups of this process per task of a few ms, a
// tenth of a core taken from the executors (see
// TestPool_LongTasksBarelyWakeTheProcess and BENCHMARKS.md, "Issue 15: the
// grid's own CPU beside CPU-bound tasks"). One fcntl when the mode changes.
// Only the holder calls it.
func (p *process) awaitAnswerAs(engine, module string) {
	w := p.warmth[engine+"/"+module]
	if blocking := w.runs > 0 && w.last < blockingReadBelow; blocking != p.answers.blocking {
		p.answers.setBlocking(blocking)
	}
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}

// readStderr logs the child's stderr line by line and keeps its tail for
// crash reports (a Go panic trace ends up here).
func (p *process) readStderr(r *os.File) {
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.log.Debug("executor stderr", "line", strings.TrimRight(line, "\n"))
			p.tailMu.Lock()
			p.signs.read(line)
			p.tail = append(p.tail, line...)
			if len(p.tail) > stderrTail {
				p.tail = append(p.tail[:0], p.tail[len(p.tail)-stderrTail:]...)
			}
			p.tailMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *process) reap(drained <-chan struct{}) {
	p.waitErr = p.cmd.Wait()
	_ = p.in.Close()
	<-drained
	close(p.exited)
}

// kill stops the child; its goroutines then reap it and end.
func (p *process) kill() {
	p.killOnce.Do(func() { _ = p.cmd.Process.Kill() })
}

// discard kills the child, waits until it is reaped and closes our end of
// its stdout. Only the holder calls it, once it no longer reads.
func (p *process) discard() {
	p.discardOnce.Do(func() {
		p.kill()
		<-p.exited
		_ = p.stdout.Close()
		p.clock.close()
	})
}

// warmingUp reports whether this child's runs of module on engine do not
// yet measure the engine (EngineChooser.Discard): its first run, and then
// runs until they add up to warmUp (warmUpTime in a Pool), unless the last
// one alone was as long. Early runs pay for cold caches, first page faults and a heap still
// growing: on a busy machine a tiny module's first run on wasmtime took
// 2.3 ms against 15 us warm, and its first 200 runs on wazero a median of
// 45 us CPU against 11 us later, as much as wasmtime's early runs though
// wasmtime's later ones took 30. Only the holder calls it.
func (p *process) warmingUp(engine, module string, warmUp time.Duration) bool {
	w := p.warmth[engine+"/"+module]
	return w.runs == 0 || w.since < warmUp && w.last < warmUp
}

// ran records a run of module on engine, for warmingUp.
func (p *process) ran(engine, module string, d time.Duration) {
	if p.warmth == nil || len(p.warmth) >= maxChooserModules {
		p.warmth = map[string]warmth{}
	}
	key := engine + "/" + module
	w := p.warmth[key]
	if w.runs > 0 {
		w.since += d
	}
	w.runs++
	w.last = d
	p.warmth[key] = w
}

// trialStreak is a module and the engine an executor runs its tasks on
// until that engine's trials are done; zero: none.
type trialStreak struct{ module, engine string }

// warmth is how much a child ran one module on one engine.
type warmth struct {
	runs  int
	since time.Duration // run time after the first run
	last  time.Duration // the last run's
}

// stop stops the child (SIGSTOP) unless it is stopped already; its stop
// clock starts counting first, so no stopped time goes uncounted.
func (p *process) stop() {
	if p.clock.markStopped(time.Now()) {
		if err := stopPID(p.pid); err != nil && p.alive() {
			p.log.Warn("cannot stop executor", "err", err)
		}
	}
}

// cont continues a stopped child (SIGCONT), after publishing its stopped
// time for the child's deadline timer.
func (p *process) cont() {
	if p.clock.markRunning(time.Now()) {
		if err := contPID(p.pid); err != nil && p.alive() {
			p.log.Warn("cannot continue executor", "err", err)
		}
	}
}

// stoppedFor is how long the pool has had this child stopped, so far.
func (p *process) stoppedFor() time.Duration { return p.clock.stoppedFor(time.Now()) }

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// readAnswer reads the child's next frame. Past limit (if > 0) of time the
// child was not stopped, or when ctx or task (if not nil) is done, it kills
// the child so the read ends. interrupted reports that either happened,
// even if the frame arrived first: the child is then dead or dying.
func (p *process) readAnswer(ctx, task context.Context, limit time.Duration) (f []byte, err error, timedOut, interrupted bool) {
	var late atomic.Bool
	var timer *runningTimer
	if limit > 0 {
		timer = afterRunning(limit, p.stoppedFor, func() { late.Store(true); p.kill() })
	}
	stopCtx := context.AfterFunc(ctx, p.kill)
	stopTask := func() bool { return true }
	if task != nil {
		stopTask = context.AfterFunc(task, p.kill)
	}
	f, err = readFrame(p.br)
	interrupted = !stopCtx()
	if !stopTask() {
		interrupted = true
	}
	if timer != nil && !timer.Stop() {
		interrupted = true
	}
	return f, err, late.Load(), interrupted
}

// awaitHello waits for the child's first frame, which says it is ready.
func (p *process) awaitHello(ctx context.Context, timeout time.Duration) error {
	f, err, timedOut, _ := p.readAnswer(ctx, nil, timeout)
	switch {
	case err == nil:
		if _, err := decodeHello(f); err != nil {
			return fmt.Errorf("%w: executor %d: %v%s", ErrExecutor, p.pid, err, hintMaybeRun)
		}
		p.startRSS, _ = residentBytes(p.pid)
		return nil
	case timedOut:
		return fmt.Errorf("%w: executor %d not ready after %s%s", ErrExecutor, p.pid, timeout, hintMaybeRun)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errProtocol):
		return fmt.Errorf("%w: executor %d does not speak the executor protocol: %v%s", ErrExecutor, p.pid, err, hintMaybeRun)
	}
	p.discard()
	return fmt.Errorf("%w: executor %d exited before it was ready: %s%s", ErrExecutor, p.pid, p.deathNote(), hintMaybeRun)
}

const hintMaybeRun = " (is wasm.MaybeRunExecutor called first in main and TestMain?)"

// run sends req and reads the answer. healthy is false when the child must
// be replaced: it timed out, died, was killed, or sent garbage.
// box is the task's memory box, to name if the child dies of it.
func (p *process) run(ctx context.Context, closed <-chan struct{}, req *Request, box memoryBox) (res *Result, err error, healthy bool) {
	p.awaitAnswerAs(req.Engine, req.ModuleHash)
	started := p.startMark()
	encodeRequest(&p.enc, req)
	if werr := p.out.write(&p.enc, req.Stdin); werr != nil { // fails if the child is already dead
		return nil, p.failure(ctx, nil, closed, werr, box), false
	}
	return p.answer(ctx, nil, closed, req, box, started)
}

// startMark is when a task starts, and the child's stopped time then,
// for the run time of a task that must be killed (answer).
type startMark struct {
	at            time.Time
	stoppedBefore time.Duration
}

func (p *process) startMark() startMark {
	return startMark{at: time.Now(), stoppedBefore: p.stoppedFor()}
}

// answer reads the answer to req, sent earlier, which the child started
// at started. task, if not nil, is req's own context: done, it kills the
// child as ctx does.
func (p *process) answer(ctx, task context.Context, closed <-chan struct{}, req *Request, box memoryBox, started startMark) (res *Result, err error, healthy bool) {
	var backstop time.Duration
	if req.Limits.Timeout > 0 {
		backstop = req.Limits.Timeout + timeoutGrace(req.Limits.Timeout)
	}
	f, rerr, timedOut, interrupted := p.readAnswer(ctx, task, backstop)
	switch {
	case rerr == nil:
		res, err, replace, derr := decodeResponse(f)
		if derr != nil {
			return nil, fmt.Errorf("%w: executor %d: %v", ErrExecutor, p.pid, derr), false
		}
		return res, err, !replace && !interrupted
	case timedOut: // the child's own watchdog did not answer: it was wedged
		ran := time.Since(started.at) - (p.stoppedFor() - started.stoppedBefore)
		return &Result{ExitCode: -1, Duration: ran}, timeoutError(req.Limits.Timeout), false
	}
	return nil, p.failure(ctx, task, closed, rerr, box), false
}

// failure is why talking to the child failed under a task: the caller's
// or the task's context, the pool's close, else the child's death.
func (p *process) failure(ctx, task context.Context, closed <-chan struct{}, rerr error, box memoryBox) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case task != nil && task.Err() != nil:
		return task.Err()
	case isClosed(closed):
		return ErrPoolClosed
	}
	return p.crashError(rerr, box)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// timeoutGrace is how long after the deadline the parent waits for the
// child's own timeout answer (which carries the partial output) before it
// kills the child regardless.
func timeoutGrace(limit time.Duration) time.Duration {
	return min(max(limit/4, 250*time.Millisecond), 2*time.Second)
}

// crashError describes a child that died under a task, with how it ended
// and the end of its stderr: KindMemory naming the box if it died of an
// allocation the box refused, else KindCrash.
func (p *process) crashError(readErr error, box memoryBox) *TaskError {
	p.discard()
	p.tailMu.Lock()
	oom, ofMemory := p.signs.ofMemory()
	p.tailMu.Unlock()
	if ofMemory {
		p.diedOfMemory = true
		how := "exited"
		if p.waitErr != nil {
			how = p.waitErr.Error()
		}
		return boxDeath(p.pid, box, how+": "+oom)
	}
	note := p.deathNote()
	if readErr != nil && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, io.ErrUnexpectedEOF) {
		note = readErr.Error() + "; " + note
	}
	return taskErrorf(KindCrash, "executor process %d died while running the task: %s", p.pid, note)
}

// deathNote is the child's exit status and stderr tail; call after exited.
func (p *process) deathNote() string {
	if p.alive() {
		return "still running"
	}
	note := "exited"
	if p.waitErr != nil {
		note = p.waitErr.Error()
	}
	p.tailMu.Lock()
	tail := strings.TrimSpace(string(p.tail))
	p.tailMu.Unlock()
	if tail != "" {
		note += "; stderr: " + tail
	}
	return note
}
