package runtimepolicy

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"time"
)

// The number of Ps of a lone server's process (`peergrid agent` without
// `--worker`), issue 15.
//
// Go's default gives a server a P per CPU, and the runtime wakes an idle
// P's spinning thread whenever a goroutine becomes runnable: each
// heartbeat, lease and report read off a worker's stream wakes a second
// thread and hands work between the two. A server whose load is under a
// core pays for that and gets nothing back. Measured (BENCHMARKS.md,
// "Issue 15: leader CPU per request, fourth session", the scale bench's
// leader with GOMAXPROCS=1 against Go's 2, interleaved, load 1.2-3): the
// mix of 10,000 workers cost 52.5 and 49.1 µs of leader CPU a request
// against 68.3 and 65.0 (8.8 and 8.2 µs a task against 11.3 and 10.9;
// 0.44 and 0.41 cores against 0.55 and 0.54) at the same ~49,500
// tasks/s; heartbeats alone 21.8-30.8 µs against 29.0-30.5.
//
// A fixed GOMAXPROCS=1 would cap a busy leader (a larger grid, a burst
// of submissions) at one core, so the server starts at 1 P and follows
// its load: every second it reads its own CPU time and, when the
// interval used more than serverRaiseShare of its Ps, raises them at once
// to what the load needs (up to the CPUs); when serverCalmIntervals
// intervals in a row would have fitted under serverLowerShare of one P
// fewer, it gives one back. The gap between the two shares, and the calm
// intervals, keep it from flapping. A process whose environment sets
// GOMAXPROCS keeps what the user set.

const (
	serverAdaptEvery    = time.Second
	serverRaiseShare    = 0.75 // of the Ps in force, used over an interval: raise
	serverLowerShare    = 0.65 // of one P fewer, used over each calm interval: lower
	serverCalmIntervals = 3
)

// ServerGOMAXPROCS is the next number of Ps of a server on cpus CPUs that
// has ps and used cores (CPU time over wall time) in the interval just
// ended, after calm intervals in a row under the lowering share before it.
// It returns the Ps and the calm intervals counted with this one.
func ServerGOMAXPROCS(used float64, ps, cpus, calm int) (next, calmNow int) {
	ps = min(max(ps, 1), max(cpus, 1))
	if used > serverRaiseShare*float64(ps) && ps < cpus {
		need := int(math.Ceil(used / serverRaiseShare))
		return min(max(need, ps+1), cpus), 0
	}
	if ps == 1 || used >= serverLowerShare*float64(ps-1) {
		return ps, 0
	}
	if calm+1 < serverCalmIntervals {
		return ps, calm + 1
	}
	return ps - 1, 0
}

// AdaptServerGOMAXPROCS runs this process at 1 P and adapts its Ps to its
// load by ServerGOMAXPROCS every second until ctx ends or the returned
// stop is called, logging each change; unless getenv has GOMAXPROCS, or
// the process's CPU time cannot be read (then Go's default stays). stop
// waits for the loop to end and puts back the GOMAXPROCS it found (for a
// process that serves only for a while: tests, benchmarks).
func AdaptServerGOMAXPROCS(ctx context.Context, getenv func(string) string, log *slog.Logger) (stop func()) {
	a := serverAdapter{every: serverAdaptEvery, cpuTime: processCPUTime, cpus: runtime.NumCPU(), log: log}
	return a.start(ctx, getenv)
}

// serverAdapter is AdaptServerGOMAXPROCS's loop, its clock and CPUs
// given (tests feed it a load of their own).
type serverAdapter struct {
	every   time.Duration
	cpuTime func() (time.Duration, bool)
	cpus    int
	log     *slog.Logger
}

func (a serverAdapter) start(ctx context.Context, getenv func(string) string) (stop func()) {
	if v := getenv("GOMAXPROCS"); v != "" {
		a.log.Info("GOMAXPROCS as the environment sets it", "gomaxprocs", runtime.GOMAXPROCS(0), "GOMAXPROCS", v, "cpus", a.cpus)
		return func() {}
	}
	if _, ok := a.cpuTime(); !ok {
		a.log.Info("GOMAXPROCS: Go's default, this process's CPU time cannot be read", "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", a.cpus)
		return func() {}
	}
	found := runtime.GOMAXPROCS(1)
	a.log.Info("GOMAXPROCS: a server's, from 1 to follow its load", "gomaxprocs", 1, "cpus", a.cpus)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(ctx)
	}()
	return func() {
		cancel()
		<-done
		runtime.GOMAXPROCS(found)
	}
}

// run reads the CPU time every interval and sets the Ps it calls for.
func (a serverAdapter) run(ctx context.Context) {
	tick := time.NewTicker(a.every)
	defer tick.Stop()
	cpu0, _ := a.cpuTime()
	wall0 := time.Now()
	calm := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cpu1, ok := a.cpuTime()
		wall1 := time.Now()
		if !ok || !wall1.After(wall0) {
			continue
		}
		used := float64(cpu1-cpu0) / float64(wall1.Sub(wall0))
		cpu0, wall0 = cpu1, wall1
		ps := runtime.GOMAXPROCS(0)
		var next int
		next, calm = ServerGOMAXPROCS(used, ps, a.cpus, calm)
		if next != ps {
			runtime.GOMAXPROCS(next)
			a.log.Info("GOMAXPROCS follows the server's load", "old", ps, "new", next, "cores_used", math.Round(used*100)/100)
		}
	}
}
