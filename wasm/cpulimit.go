package wasm

import (
	"context"
	"math"
	"runtime"
	"slices"
	"time"
)

// DutyPeriod is the period of the CPU limit's duty cycle: in each, busy
// executors run for their share of it and are stopped for the rest. Short
// enough that a person at the machine feels an even load, long enough that
// signalling costs nothing.
const DutyPeriod = 100 * time.Millisecond

// CanPause reports whether this platform can stop and continue executors
// (SIGSTOP and SIGCONT; not Windows). Elsewhere Pause and SetCPULimit only
// record the state: running tasks go on.
func CanPause() bool { return canStop }

// Pause stops every executor running a task (SIGSTOP), and every one that
// starts a task until Resume: their tasks wait, losing nothing, and the
// time they wait counts neither against their timeout nor in their
// Duration. Idle executors use no CPU and are left alone.
func (p *Pool) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	p.applyLocked()
}

// Resume continues the executors Pause stopped (SIGCONT), within the CPU
// limit if one is set.
func (p *Pool) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.applyLocked()
}

// Paused reports whether the pool is paused.
func (p *Pool) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// SetCPULimit caps the executors together at share (0 < share < 1) of the
// machine's CPU time (all its cores), by duty-cycling the busy ones with
// SIGSTOP and SIGCONT every DutyPeriod: with n busy executors on a machine
// of c cores, each runs share*c/n of every period (at most all of it).
// A share of 0, or 1 or more, removes the limit.
func (p *Pool) SetCPULimit(share float64) {
	if share >= 1 || share < 0 {
		share = 0
	}
	p.mu.Lock()
	p.cpuShare = share
	var old *runningLoop
	switch {
	case share > 0 && p.duty == nil && !p.isClosed:
		p.duty = startLoop(p.dutyCycle)
	case share == 0:
		old, p.duty = p.duty, nil
	}
	p.mu.Unlock()
	if old != nil {
		old.stop() // not under p.mu: the loop takes it
		p.mu.Lock()
		p.offPhase = false
		p.applyLocked()
		p.mu.Unlock()
	}
}

// CPULimit is the share of the machine SetCPULimit set (0: none).
func (p *Pool) CPULimit() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpuShare
}

// PIDs lists the executor children's process ids.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.live))
	for proc := range p.live {
		out = append(out, proc.pid)
	}
	return out
}

// setBusy marks a child as running a task (or no longer): a child that
// starts a task while the pool is paused or in the off phase of its duty
// cycle is stopped before it reads the request; one that is done is
// continued (it may have been killed while stopped).
func (p *Pool) setBusy(proc *process, busy bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if busy {
		p.busy[proc] = struct{}{}
		if p.stoppedLocked() {
			proc.stop()
		}
		return
	}
	delete(p.busy, proc)
	proc.cont()
}

func (p *Pool) stoppedLocked() bool { return canStop && (p.paused || p.offPhase) }

// applyLocked stops or continues every busy child as the state says.
func (p *Pool) applyLocked() {
	stop := p.stoppedLocked()
	for proc := range p.busy {
		if stop {
			proc.stop()
		} else {
			proc.cont()
		}
	}
}

// dutyCycle runs the busy executors for their share of every DutyPeriod
// and stops them for the rest, until ctx ends. Where the executors' CPU
// time can be read (Linux), it corrects the share once a second by what
// they really used: an executor that runs half of every period uses less
// than half a core when other programs compete for the CPU (it runs at the
// lowest priority), and its own runtime's threads may use more.
func (p *Pool) dutyCycle(ctx context.Context) {
	cores := float64(runtime.NumCPU())
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	meter := &cpuMeter{gain: 1}
	for {
		p.mu.Lock()
		busy := p.busyPIDsLocked()
		on := 1.0
		if n := len(busy); n > 0 && p.cpuShare > 0 {
			on = min(1, p.cpuShare*cores/float64(n)*meter.gain)
			meter.observe(busy, p.cpuShare*cores, time.Now())
		}
		p.offPhase = false
		p.applyLocked()
		p.mu.Unlock()
		if !sleepCtx(ctx, timer, time.Duration(on*float64(DutyPeriod))) {
			return
		}
		if on >= 1 {
			continue
		}
		p.mu.Lock()
		p.offPhase = true
		p.applyLocked()
		p.mu.Unlock()
		if !sleepCtx(ctx, timer, DutyPeriod-time.Duration(on*float64(DutyPeriod))) {
			return
		}
	}
}

func (p *Pool) busyPIDsLocked() []int {
	pids := make([]int, 0, len(p.busy))
	for proc := range p.busy {
		pids = append(pids, proc.pid)
	}
	slices.Sort(pids)
	return pids
}

// cpuMeter measures the busy executors' CPU time over windows of
// meterWindow and keeps the gain that brings it to the target.
type cpuMeter struct {
	gain  float64
	pids  []int         // the busy executors the window started with
	start time.Time     // when it started
	used  time.Duration // their CPU time then
}

const (
	meterWindow      = time.Second
	minGain, maxGain = 0.5, 2.0
)

// observe starts a window, or ends one and adjusts the gain: target is the
// executors' CPU share in cores.
func (m *cpuMeter) observe(pids []int, target float64, now time.Time) {
	used, ok := cpuTimeOf(pids)
	if !ok {
		return // open loop
	}
	if !slices.Equal(pids, m.pids) || m.start.IsZero() {
		m.pids, m.start, m.used = pids, now, used
		return
	}
	elapsed := now.Sub(m.start)
	if elapsed < meterWindow {
		return
	}
	got := float64(used-m.used) / float64(elapsed) // cores used
	if got > 0 {
		// Half the correction each window: steady, and no overshoot from
		// the 10 ms granularity of the measure.
		m.gain = min(max(m.gain*math.Sqrt(target/got), minGain), maxGain)
	}
	m.start, m.used = now, used
}

// cpuTimeOf sums the CPU time of processes; false if any cannot be read.
func cpuTimeOf(pids []int) (time.Duration, bool) {
	var sum time.Duration
	for _, pid := range pids {
		d, ok := processCPUTime(pid)
		if !ok {
			return 0, false
		}
		sum += d
	}
	return sum, true
}

// sleepCtx waits d on t (stopped and drained), or until ctx ends (false).
func sleepCtx(ctx context.Context, t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runningLoop is a goroutine with its own cancel, stopped and waited for.
type runningLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLoop(fn func(context.Context)) *runningLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &runningLoop{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(l.done); fn(ctx) }()
	return l
}

// stop cancels the loop and waits for it; a nil loop is a no-op.
func (l *runningLoop) stop() {
	if l != nil {
		l.cancel()
		<-l.done
	}
}
