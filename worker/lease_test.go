package worker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestLease_AsksForCoresPlusPrefetchAndSaysWhatItCanRun: the first lease
// asks for one task per core plus the prefetch, long-polls for LeaseWait,
// and carries the worker's id, address and engines.
func TestLease_AsksForCoresPlusPrefetchAndSaysWhatItCanRun(t *testing.T) {
	g := newFakeGrid()
	w := testWorker(t, g, Config{Cores: 2, Prefetch: 3, LeaseWait: 7 * time.Second, Address: "w1.example:9000",
		Engines: []string{"wazero"}, Pool: &fakeRunner{}})
	runWorker(t, w)
	eventually(t, "a lease call", func() bool { return len(g.callsOf("Lease")) > 0 })
	got := g.callsOf("Lease")[0].lease
	want := api.LeaseRequest{Worker: "w1", Address: "w1.example:9000", Cores: 2, Max: 5, Wait: 7 * time.Second, Engines: []string{"wazero"}}
	if got.Worker != want.Worker || got.Address != want.Address || got.Cores != want.Cores || got.Max != want.Max ||
		got.Wait != want.Wait || !slices.Equal(got.Engines, want.Engines) || got.Storage {
		t.Fatalf("lease request %+v, want %+v", *got, want)
	}
}

// TestLease_NeverHoldsMoreThanItsSlots: with 2 cores and a prefetch of 3 a
// worker holds at most 5 leases, asking for more only as reports free
// slots, however many tasks the grid has queued.
func TestLease_NeverHoldsMoreThanItsSlots(t *testing.T) {
	g := newFakeGrid()
	g.queue(tasksOf("j", 20)...)
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 2, Prefetch: 3, Pool: runner})
	run := runWorker(t, w)
	eventually(t, "2 tasks running", func() bool { return len(runner.started()) == 2 })
	for range 6 {
		runner.gate <- struct{}{}
	}
	eventually(t, "6 tasks reported", func() bool { return reportedCount(g) == 6 })
	eventually(t, "the slots refilled", func() bool { return len(runner.started()) == 8 })
	close(runner.gate) // the 2 running finish in the drain
	run.stop()

	leases := g.callsOf("Lease")
	if l := leases[0]; l.lease.Max != 5 || len(l.granted) != 5 {
		t.Fatalf("first lease asked for %d and got %d, want 5 and 5", l.lease.Max, len(l.granted))
	}
	held := 0
	for _, c := range g.allCalls() {
		switch c.method {
		case "Lease":
			if held+c.lease.Max > 5 {
				t.Fatalf("a lease asked for %d more with %d held: over the 5 slots", c.lease.Max, held)
			}
			held += len(c.granted)
		case "Report":
			held -= len(c.report.Reports)
		case "Release":
			held -= len(c.release.Tasks)
		}
	}
	if held != 0 {
		t.Fatalf("after the drain %d leases are neither reported nor handed back", held)
	}
}

// TestLease_AsksAgainWhenALongPollEndsEmpty: a long poll that ends with no
// task is followed by another for the same free slots, and a task queued
// later is run.
func TestLease_AsksAgainWhenALongPollEndsEmpty(t *testing.T) {
	g := newFakeGrid()
	w := testWorker(t, g, Config{Cores: 1, Prefetch: -1, LeaseWait: 20 * time.Millisecond, Pool: &fakeRunner{}})
	runWorker(t, w)
	eventually(t, "3 long polls", func() bool { return len(g.callsOf("Lease")) >= 3 })
	for _, c := range g.callsOf("Lease")[:3] {
		if c.lease.Max != 1 || c.lease.Wait != 20*time.Millisecond || len(c.granted) != 0 {
			t.Fatalf("long poll: asked for %d waiting %v, got %d; want 1, 20ms, 0", c.lease.Max, c.lease.Wait, len(c.granted))
		}
	}
	g.queue(task("late", 0))
	eventually(t, "the late task reported", func() bool { return reportedCount(g) == 1 })
}

// TestLease_BacksOffAfterFailures: failed lease calls are retried after
// 50ms, 100ms, 200ms, ... not at once.
func TestLease_BacksOffAfterFailures(t *testing.T) {
	g := newFakeGrid()
	g.leaseErr = func(n int) error {
		if n < 3 {
			return errors.New("no leader")
		}
		return nil
	}
	w := testWorker(t, g, Config{Cores: 1, Pool: &fakeRunner{}})
	runWorker(t, w)
	eventually(t, "4 lease calls", func() bool { return len(g.callsOf("Lease")) >= 4 })
	leases := g.callsOf("Lease")
	for i, want := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond} {
		if gap := leases[i+1].at.Sub(leases[i].at); gap < want {
			t.Fatalf("retry %d came %v after the failure, want at least %v", i+1, gap, want)
		}
	}
}

// TestBackoff_DoublesUpToFiveSecondsAndResets: the waits between failures
// go 50ms, 100ms, ... up to 5s, and a success starts them again at 50ms.
func TestBackoff_DoublesUpToFiveSecondsAndResets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // wait returns at once; the sequence is what is checked
	b := newBackoff()
	var got []time.Duration
	for range 9 {
		got = append(got, b.d)
		b.wait(ctx)
	}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff waits %v, want %v", got, want)
	}
	b.reset()
	if b.d != 50*time.Millisecond {
		t.Fatalf("after reset: %v, want 50ms", b.d)
	}
}

// TestSlots_LeaseInBatchesUnlessRunningDry: acquire takes every free slot
// up to the target, but waits until a quarter of the target is free unless
// the worker holds no more than two tasks per core.
func TestSlots_LeaseInBatchesUnlessRunningDry(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel() // acquire with done returns 0 where it would wait
	eight := func() leasePlan { return leasePlan{target: 8, batch: 8 / 4} }
	s := newSlots()
	if n := s.acquire(done, eight, 1); n != 8 {
		t.Fatalf("empty: acquired %d, want 8", n)
	}
	s.release(1)
	if n := s.acquire(done, eight, 1); n != 0 {
		t.Fatalf("1 of 8 free: acquired %d, want to wait for a quarter", n)
	}
	s.release(1)
	if n := s.acquire(done, eight, 1); n != 2 {
		t.Fatalf("2 of 8 free: acquired %d, want 2", n)
	}
	s.release(1)
	if n := s.acquire(done, eight, 4); n != 1 {
		t.Fatalf("4 cores, 7 held: acquired %d, want the 1 free (about to run dry)", n)
	}

	got := make(chan int)
	go func() { got <- s.acquire(context.Background(), eight, 1) }()
	s.release(3)
	select {
	case n := <-got:
		if n != 3 {
			t.Fatalf("after 3 released: acquired %d, want 3", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire did not wake on release")
	}
}

// TestWorker_PrefetchAdaptsToTaskDuration: with no prefetch set, short
// tasks get a deep queue and long ones none beyond a task per core.
func TestWorker_PrefetchAdaptsToTaskDuration(t *testing.T) {
	w := &Worker{cfg: Config{Cores: 2}}
	r := newRun(w)
	if got := r.target(); got != 4 {
		t.Fatalf("before any task: target %d, want 2 per core", got)
	}
	for i := 0; i < 50; i++ {
		r.observe(time.Millisecond)
	}
	if got := r.target(); got < 400 {
		t.Fatalf("1 ms tasks: target %d, want a deep queue (>= 400)", got)
	}
	for i := 0; i < 100; i++ {
		r.observe(10 * time.Second)
	}
	if got := r.target(); got != 4 {
		t.Fatalf("10 s tasks: target %d, want cores + cores", got)
	}
	w.cfg.Prefetch = -1
	if got := r.target(); got != 2 {
		t.Fatalf("prefetch off: target %d, want cores", got)
	}
	w.cfg.Prefetch = 7
	if got := r.target(); got != 9 {
		t.Fatalf("fixed prefetch: target %d, want 9", got)
	}
}

// reportedCount is how many reports the grid has received.
func reportedCount(g *fakeGrid) int {
	n := 0
	for _, c := range g.callsOf("Report") {
		n += len(c.report.Reports)
	}
	return n
}

// TestLease_HalfTheTargetAtOnceWhileTheRestKeepsTheCoresBusy: tasks of a
// few milliseconds are leased half a target at a time (half as many Raft
// entries as a quarter), since the half still held keeps the cores busy
// for 100 ms or more while the lease is made; tiny tasks, whose target is
// capped, a quarter at a time, so they do not run dry.
func TestLease_HalfTheTargetAtOnceWhileTheRestKeepsTheCoresBusy(t *testing.T) {
	for _, c := range []struct {
		cores int
		avg   time.Duration
		want  int
	}{
		{2, 0, 1},                             // nothing ran yet: 2 per core, a quarter
		{2, 3500 * time.Microsecond, 144 / 2}, // 2+2*71: the 72 left hold the cores 126 ms
		{2, 2 * time.Millisecond, 252 / 2},    // 2+2*125
		{2, 50 * time.Microsecond, 514 / 4},   // capped at 2+512: 257 left would last 6 ms
		{2, 400 * time.Microsecond, 514 / 4},  // 257 left would last 51 ms
		{1, 10 * time.Second, 1},              // long tasks: one of the two
	} {
		w := &Worker{cfg: Config{Cores: c.cores}}
		r := newRun(w)
		r.avgNs.Store(int64(c.avg))
		if p := r.plan(); p.batch != c.want {
			t.Errorf("%d cores, tasks of %v: target %d, lease batch %d, want %d", c.cores, c.avg, p.target, p.batch, c.want)
		}
	}
}
