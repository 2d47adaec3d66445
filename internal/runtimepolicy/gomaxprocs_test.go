package runtimepolicy

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

func TestWorkerGOMAXPROCS_TheCPUsNotDonatedAtLeastOne(t *testing.T) {
	for _, c := range []struct{ donated, cpus, want int }{
		{2, 2, 1}, {1, 2, 1}, {0, 2, 2}, {4, 2, 1}, // all, one of two, none, more than there are
		{1, 1, 1}, {8, 8, 1}, {6, 8, 2}, {1, 64, 63}, {64, 64, 1},
	} {
		if got := WorkerGOMAXPROCS(c.donated, c.cpus); got != c.want {
			t.Errorf("%d of %d CPUs donated: GOMAXPROCS %d, want %d", c.donated, c.cpus, got, c.want)
		}
	}
}

// TestApplyWorkerGOMAXPROCS_SetsTheRuleLogsItAndPutsBack: without
// GOMAXPROCS in the environment the process gets the rule's Ps (a
// worker's default cores being all the CPUs), says so once, and gets back
// what it had from restore.
func TestApplyWorkerGOMAXPROCS_SetsTheRuleLogsItAndPutsBack(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	cpus := runtime.NumCPU()
	for _, c := range []struct{ donated, want int }{
		{0, 1}, {cpus, 1}, {cpus + 3, 1}, {1, max(cpus-1, 1)},
	} {
		runtime.GOMAXPROCS(cpus + 1) // not what the rule gives
		var logged bytes.Buffer
		restore := ApplyWorkerGOMAXPROCS(func(string) string { return "" }, c.donated, slog.New(slog.NewTextHandler(&logged, nil)))
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("%d of %d CPUs donated: GOMAXPROCS %d, want %d", c.donated, cpus, got, c.want)
		}
		if lines := strings.Count(logged.String(), "gomaxprocs="); lines != 1 {
			t.Errorf("%d donated: logged %d choices, want 1:\n%s", c.donated, lines, logged.String())
		}
		restore()
		if got := runtime.GOMAXPROCS(0); got != cpus+1 {
			t.Errorf("%d donated: GOMAXPROCS %d after restore, want the %d it found", c.donated, got, cpus+1)
		}
	}
}

// TestApplyWorkerGOMAXPROCS_UsersEnvironmentWins: with GOMAXPROCS set the
// runtime keeps what it made of it, and the log says the environment's.
func TestApplyWorkerGOMAXPROCS_UsersEnvironmentWins(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3) // as GOMAXPROCS=3 would have made it
	var logged bytes.Buffer
	env := map[string]string{"GOMAXPROCS": "3"}
	restore := ApplyWorkerGOMAXPROCS(func(k string) string { return env[k] }, 0, slog.New(slog.NewTextHandler(&logged, nil)))
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS=3 in the environment: %d in force, want 3 kept", got)
	}
	if !strings.Contains(logged.String(), "GOMAXPROCS=3") || !strings.Contains(logged.String(), "gomaxprocs=3") {
		t.Fatalf("log does not say the environment's GOMAXPROCS:\n%s", logged.String())
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d after restore, want 3", got)
	}
}
