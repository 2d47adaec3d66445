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
// interval used more than serverRaiseShare of its Ps (they are full),
// raises them at once to what the load needs (up to the CPUs). A lower
// share raised it for nothing: at 1 P the scale mix has seconds of
// 0.79-0.89 cores, and at 0.75 it went to 2 Ps and back all through the
// window and cost what Go's default does, at the same tasks/s. After
// calm intervals in a row under serverLowerShare of its Ps (a server at
// 2 Ps using under a core), it gives one back. The second
// P itself costs CPU (0.55 cores at 2 Ps against 0.43 at 1 for the same
// work), so the lowering share has to be above what the load uses at one
// P fewer, and a lowering is a trial: one the load takes back within the
// calm wait doubles the wait (3 s up to 64 s), so a load that needs the
// Ps keeps them and a steady load changes them at most about once a
// minute. A process whose environment sets GOMAXPROCS keeps what the
// user set.

const (
	serverAdaptEvery    = time.Second
	serverRaiseShare    = 0.9 // of the Ps in force, used over an interval: raise (they are full)
	serverLowerShare    = 0.5 // of the Ps in force, used over each calm interval: lower one
	serverCalmIntervals = 3   // the calm wait to begin with
	serverMaxCalmWait   = 64  // after lowerings the load took back
)

// ServerPsHistory is what ServerGOMAXPROCS remembers between intervals.
// The zero value is a server that has not changed its Ps yet.
type ServerPsHistory struct {
	Calm       int // intervals in a row under the lowering share
	Wait       int // calm intervals a lowering needs (0: serverCalmIntervals)
	SinceLower int // intervals since the last lowering (0: none yet)
}

// ServerGOMAXPROCS is the next number of Ps of a server on cpus CPUs that
// has ps and used cores (CPU time over wall time) in the interval just
// ended, and the history to pass with the next interval.
func ServerGOMAXPROCS(used float64, ps, cpus int, h ServerPsHistory) (int, ServerPsHistory) {
	ps = min(max(ps, 1), max(cpus, 1))
	h.Wait = max(h.Wait, serverCalmIntervals)
	if h.SinceLower > 0 {
		h.SinceLower = min(h.SinceLower+1, serverMaxCalmWait+1)
	}
	if used > serverRaiseShare*float64(ps) && ps < cpus {
		if h.SinceLower > 0 && h.SinceLower <= h.Wait { // the last lowering was taken back
			h.Wait = min(2*h.Wait, serverMaxCalmWait)
		} else {
			h.Wait = serverCalmIntervals
		}
		need := int(math.Ceil(used / serverRaiseShare))
		return min(max(need, ps+1), cpus), ServerPsHistory{Wait: h.Wait}
	}
	if ps == 1 || used >= serverLowerShare*float64(ps) {
		h.Calm = 0
		return ps, h
	}
	if h.Calm+1 < h.Wait {
		h.Calm++
		return ps, h
	}
	return ps - 1, ServerPsHistory{Wait: h.Wait, SinceLower: 1}
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
	if usersGOMAXPROCS(getenv, a.log, "cpus", a.cpus) {
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
	var h ServerPsHistory
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
		next, h = ServerGOMAXPROCS(used, ps, a.cpus, h)
		if next != ps {
			runtime.GOMAXPROCS(next)
			a.log.Info("GOMAXPROCS follows the server's load", "old", ps, "new", next, "cores_used", math.Round(used*100)/100)
		}
	}
}
