package runtimepolicy

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestServerGOMAXPROCS_RaisesAtOnceLowersAfterCalm(t *testing.T) {
	type h = ServerPsHistory
	for _, c := range []struct {
		name     string
		used     float64
		ps, cpus int
		before   h
		wantPs   int
		wantH    h
	}{
		{"idle at 1 stays", 0.01, 1, 2, h{}, 1, h{Wait: 3}},
		{"under the share at 1 stays", 0.89, 1, 2, h{Calm: 2}, 1, h{Wait: 3}},
		{"the mix at 1 (0.44 cores) stays", 0.44, 1, 2, h{}, 1, h{Wait: 3}},
		{"over the share at 1 raises to 2", 0.91, 1, 2, h{}, 2, h{Wait: 3}},
		{"a full core at 1 of 8 raises to 2", 1.0, 1, 8, h{}, 2, h{Wait: 3}},
		{"3 cores at 2 of 8 raise to what they need", 3.0, 2, 8, h{}, 4, h{Wait: 3}},
		{"never past the CPUs", 6.0, 2, 4, h{}, 4, h{Wait: 3}},
		{"all the CPUs stay when busy", 2.0, 2, 2, h{Calm: 2}, 2, h{Wait: 3}},
		{"one CPU never raises", 1.0, 1, 1, h{}, 1, h{Wait: 3}},
		{"the mix at 2 (0.85 cores) counts calm", 0.85, 2, 2, h{}, 2, h{Calm: 1, Wait: 3}},
		{"calm counted on", 0.1, 2, 2, h{Calm: 1, Wait: 3}, 2, h{Calm: 2, Wait: 3}},
		{"the last calm interval lowers one", 0.1, 2, 2, h{Calm: 2, Wait: 3}, 1, h{Wait: 3, SinceLower: 1}},
		{"idle at 8 lowers one at a time", 0.0, 8, 8, h{Calm: 2}, 7, h{Wait: 3, SinceLower: 1}},
		{"a busy interval ends the calm", 1.0, 2, 2, h{Calm: 2, Wait: 3}, 2, h{Wait: 3}},
		{"between the shares at 3 holds", 1.6, 3, 4, h{Calm: 2}, 3, h{Wait: 3}},
		{"more Ps than CPUs come down to the CPUs", 0.0, 5, 2, h{}, 2, h{Calm: 1, Wait: 3}},
		{"a lowering taken back doubles the wait", 0.95, 1, 2, h{Wait: 3, SinceLower: 1}, 2, h{Wait: 6}},
		{"the wait doubles up to 64", 0.95, 1, 2, h{Wait: 48, SinceLower: 5}, 2, h{Wait: 64}},
		{"a longer calm wait is waited", 0.1, 2, 2, h{Calm: 2, Wait: 6}, 2, h{Calm: 3, Wait: 6}},
		{"a lowering that held counts on", 0.1, 1, 2, h{Wait: 6, SinceLower: 3}, 1, h{Wait: 6, SinceLower: 4}},
		{"a raise long after a lowering starts the wait again", 0.95, 1, 2, h{Wait: 64, SinceLower: 65}, 2, h{Wait: 3}},
	} {
		ps, after := ServerGOMAXPROCS(c.used, c.ps, c.cpus, c.before)
		if ps != c.wantPs || after != c.wantH {
			t.Errorf("%s: %.2f cores used at %d Ps of %d CPUs, %+v: (%d Ps, %+v), want (%d, %+v)",
				c.name, c.used, c.ps, c.cpus, c.before, ps, after, c.wantPs, c.wantH)
		}
	}
}

// TestServerGOMAXPROCS_ASteadyLoadBarelyMoves: any steady load, fed back
// through the rule from any start (the worst case: a load that costs as
// much CPU at fewer Ps), settles; after that its Ps change at most twice
// (a lowering tried and taken back) every serverMaxCalmWait intervals.
func TestServerGOMAXPROCS_ASteadyLoadBarelyMoves(t *testing.T) {
	const cpus, settle, watch = 8, 1000, 2000
	for load := 0.0; load <= cpus; load += 0.05 {
		for start := 1; start <= cpus; start++ {
			ps, h := start, ServerPsHistory{}
			for range settle {
				ps, h = ServerGOMAXPROCS(min(load, float64(ps)), ps, cpus, h)
			}
			changes := 0
			for range watch {
				var next int
				if next, h = ServerGOMAXPROCS(min(load, float64(ps)), ps, cpus, h); next != ps {
					changes++
				}
				ps = next
			}
			if changes > 2*watch/serverMaxCalmWait+2 {
				t.Fatalf("%.2f cores from %d Ps: %d changes in %d intervals after settling", load, start, changes, watch)
			}
		}
	}
}

// fakeLoad is a CPU clock that runs at cores CPU seconds a second of
// wall time, as a process burning that many cores would see its own.
type fakeLoad struct {
	mu    sync.Mutex
	cores float64
	cpu   time.Duration
	last  time.Time
}

func (f *fakeLoad) burn(cores float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	f.cores = cores
}

func (f *fakeLoad) advance() {
	now := time.Now()
	f.cpu += time.Duration(f.cores * float64(now.Sub(f.last)))
	f.last = now
}

func (f *fakeLoad) cpuTime() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	return f.cpu, true
}

// TestAdaptServer_RaisesUnderLoadLowersWhenIdleAndPutsBack: the loop
// starts the process at 1 P, raises its Ps while it burns more than a
// core's share, gives them back once it is idle, logs each change, and
// stop puts back what it found.
func TestAdaptServer_RaisesUnderLoadLowersWhenIdleAndPutsBack(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(7) // not what the loop sets
	load := &fakeLoad{last: time.Now()}
	var logged syncBuffer
	a := serverAdapter{every: 20 * time.Millisecond, cpuTime: load.cpuTime, cpus: 4, log: slog.New(slog.NewTextHandler(&logged, nil))}
	stop := a.start(context.Background(), func(string) string { return "" })
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS %d once started, want 1", got)
	}
	load.burn(1.0) // a core's worth: more than 0.9 of 1 P
	eventually(t, "Ps raised under a core's load", func() bool { return runtime.GOMAXPROCS(0) >= 2 })
	load.burn(3.0) // needs 4 (3/0.9), all the CPUs
	eventually(t, "Ps raised to the CPUs", func() bool { return runtime.GOMAXPROCS(0) == 4 })
	load.burn(0)
	eventually(t, "Ps given back when idle", func() bool { return runtime.GOMAXPROCS(0) == 1 })
	stop()
	if got := runtime.GOMAXPROCS(0); got != 7 {
		t.Fatalf("GOMAXPROCS %d after stop, want the 7 it found", got)
	}
	for _, want := range []string{"old=1 new=2", "new=4", "old=2 new=1"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log has no change %q:\n%s", want, logged.String())
		}
	}
}

// TestAdaptServerGOMAXPROCS_UsersEnvironmentWins: with GOMAXPROCS set the
// runtime keeps what it made of it, the log says so, and no loop runs.
func TestAdaptServerGOMAXPROCS_UsersEnvironmentWins(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3) // as GOMAXPROCS=3 would have made it
	var logged syncBuffer
	env := map[string]string{"GOMAXPROCS": "3"}
	var reads atomic.Int64
	a := serverAdapter{every: time.Millisecond, cpus: 4, log: slog.New(slog.NewTextHandler(&logged, nil)),
		cpuTime: func() (time.Duration, bool) { reads.Add(1); return time.Duration(reads.Load()) * time.Second, true }}
	stop := a.start(context.Background(), func(k string) string { return env[k] })
	defer stop()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS=3 in the environment: %d in force, want 3 kept", got)
	}
	if reads.Load() != 0 {
		t.Fatalf("the CPU time was read %d times: a loop runs though the user set GOMAXPROCS", reads.Load())
	}
	if !strings.Contains(logged.String(), "GOMAXPROCS=3") || !strings.Contains(logged.String(), "gomaxprocs=3") {
		t.Fatalf("log does not say the environment's GOMAXPROCS:\n%s", logged.String())
	}
	// The public entry point obeys it too.
	AdaptServerGOMAXPROCS(context.Background(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("AdaptServerGOMAXPROCS with GOMAXPROCS=3: %d in force, want 3 kept", got)
	}
}

// TestProcessCPUTime_CountsABurningGoroutine: the clock the server's loop
// reads grows with this process's own work.
func TestProcessCPUTime_CountsABurningGoroutine(t *testing.T) {
	before, ok := processCPUTime()
	if !ok {
		t.Skip("no getrusage on this platform")
	}
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	after, _ := processCPUTime()
	if after-before < 10*time.Millisecond { // even at a load of 10 on 2 CPUs a burning thread gets 40 ms
		t.Fatalf("200 ms of burning counted %v of CPU time", after-before)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
