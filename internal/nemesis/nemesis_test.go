package nemesis

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNemesis runs a schedule of faults against a grid of real agent
// processes, each on its own host of a test network (3 servers, 3 workers
// and a client host), while clients submit, read, cancel and fetch jobs
// and put and get blobs. Then it checks the history and the grid: see
// finalChecks. The schedule is drawn from a seed the test prints
// (PEERGRID_NEMESIS_SEED=N runs that schedule again); PEERGRID_NEMESIS=long
// runs the long schedule instead of the short one, and
// PEERGRID_NEMESIS_ONLY=name,... draws only from the nemeses named.
func TestNemesis(t *testing.T) {
	seed := nemesisSeed(t)
	long := os.Getenv("PEERGRID_NEMESIS") == "long"
	var only []string
	if s := os.Getenv("PEERGRID_NEMESIS_ONLY"); s != "" {
		only = strings.Split(s, ",")
	}
	steps := schedule(seed, long, only...)
	if len(steps) == 0 {
		t.Fatalf("PEERGRID_NEMESIS_ONLY=%s names no nemesis (%s)", os.Getenv("PEERGRID_NEMESIS_ONLY"), nemesisNames())
	}
	t.Logf("seed %d (PEERGRID_NEMESIS_SEED=%d reruns it), long %v: %s", seed, seed, long, describeSchedule(steps))

	g := startGrid(t, gridConfig{seed: seed, seeded: true, workers: 3, workerServers: workerOrders(seed)})
	h := newHistory(seed)
	t.Cleanup(func() {
		if err := h.save(filepath.Join(g.dir, "history.json")); err != nil {
			t.Logf("saving the history: %v", err)
		}
	})
	stopObserving := g.observe(h, 250*time.Millisecond)
	defer stopObserving()
	w := &workload{g: g, h: h}
	ctx, stopWorkload := context.WithCancel(context.Background())
	w.start(ctx, 3, seed)
	r := newRunner(g, h, w, seed)
	time.Sleep(2 * time.Second) // the schedule: a calm start
	for _, s := range steps {
		s.nemesis.run(r, s.hold)
		r.leader()         // healed: wait for a leader all agree on
		time.Sleep(s.calm) // the schedule: calm between faults
	}
	stopWorkload()
	w.wait()
	for _, p := range g.finalChecks(h, w) {
		g.errorf("%s", p)
	}
	ops, _, samples := h.snapshot()
	t.Logf("%d calls, %d samples", len(ops), len(samples))
}

// nemesisSeed is PEERGRID_NEMESIS_SEED, else a new one.
func nemesisSeed(t *testing.T) int64 {
	if s := os.Getenv("PEERGRID_NEMESIS_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("PEERGRID_NEMESIS_SEED=%q: %v", s, err)
		}
		return seed
	}
	return time.Now().UnixNano() % 1_000_000_000
}
