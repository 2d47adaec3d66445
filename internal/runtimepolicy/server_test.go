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
	for _, c := range []struct {
		name               string
		used               float64
		ps, cpus, calm     int
		wantNext, wantCalm int
	}{
		{"idle at 1 stays", 0.01, 1, 2, 0, 1, 0},
		{"under the share at 1 stays", 0.74, 1, 2, 2, 1, 0},
		{"the mix at 1 (0.44 cores) stays", 0.44, 1, 2, 0, 1, 0},
		{"over the share at 1 raises to 2", 0.76, 1, 2, 0, 2, 0},
		{"a full core at 1 of 8 raises to 2", 1.0, 1, 8, 0, 2, 0},
		{"3 cores at 2 of 8 raise to what they need", 3.0, 2, 8, 0, 4, 0},
		{"never past the CPUs", 6.0, 2, 4, 0, 4, 0},
		{"all the CPUs stay when busy", 2.0, 2, 2, 0, 2, 0},
		{"one CPU never raises", 1.0, 1, 1, 0, 1, 0},
		{"the mix at 2 (0.58 cores) counts calm", 0.58, 2, 2, 0, 2, 1},
		{"calm counted on", 0.1, 2, 2, 1, 2, 2},
		{"the third calm interval lowers one", 0.1, 2, 2, 2, 1, 0},
		{"idle at 8 lowers one at a time", 0.0, 8, 8, 2, 7, 0},
		{"a busy interval ends the calm", 0.66, 2, 2, 2, 2, 0},
		{"between the shares at 3 holds", 1.4, 3, 4, 2, 3, 0},
		{"more Ps than CPUs come down to the CPUs", 0.0, 5, 2, 0, 2, 1},
	} {
		next, calm := ServerGOMAXPROCS(c.used, c.ps, c.cpus, c.calm)
		if next != c.wantNext || calm != c.wantCalm {
			t.Errorf("%s: %.2f cores used at %d Ps of %d CPUs, %d calm: (%d Ps, %d calm), want (%d, %d)",
				c.name, c.used, c.ps, c.cpus, c.calm, next, calm, c.wantNext, c.wantCalm)
		}
	}
}

// TestServerGOMAXPROCS_NeverFlapsOnASteadyLoad: any steady load, fed
// back through the rule from any start, settles and then never changes.
func TestServerGOMAXPROCS_NeverFlapsOnASteadyLoad(t *testing.T) {
	const cpus = 8
	for load := 0.0; load <= cpus; load += 0.05 {
		for start := 1; start <= cpus; start++ {
			ps, calm := start, 0
			for range 4 * cpus * serverCalmIntervals { // long enough to settle
				ps, calm = ServerGOMAXPROCS(min(load, float64(ps)), ps, cpus, calm)
			}
			settled := ps
			for range 100 {
				if ps, calm = ServerGOMAXPROCS(min(load, float64(ps)), ps, cpus, calm); ps != settled {
					t.Fatalf("%.2f cores from %d Ps: settled at %d, then moved to %d", load, start, settled, ps)
				}
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
	load.burn(1.0) // a core's worth: more than 0.75 of 1 P
	eventually(t, "Ps raised under a core's load", func() bool { return runtime.GOMAXPROCS(0) >= 2 })
	load.burn(2.5) // needs 4 (2.5/0.75), all the CPUs
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
