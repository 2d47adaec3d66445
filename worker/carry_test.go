package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// reportsSent lists every report sent, alone or carried by a lease call,
// in order, and how many went each way.
func reportsSent(g *fakeGrid) (sent []api.TaskRef, alone, carried int) {
	for _, c := range g.callsOf("Report") {
		for _, rep := range c.report.Reports {
			sent = append(sent, rep.TaskRef)
		}
		if c.carried {
			carried += len(c.report.Reports)
		} else {
			alone += len(c.report.Reports)
		}
	}
	return sent, alone, carried
}

// oneAtATime runs n tasks of job through a worker of one core and no
// prefetch, letting each finish only once the worker has leased it, so
// the lease loop is waiting for its slot when the report is made.
func oneAtATime(t *testing.T, g *fakeGrid, n int) {
	t.Helper()
	g.queue(tasksOf("j", n)...)
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: -1, Pool: runner})
	run := runWorker(t, w)
	for i := 1; i <= n; i++ {
		eventually(t, "the next task running", func() bool { return len(runner.started()) == i })
		runner.gate <- struct{}{}
	}
	eventually(t, "every task reported", func() bool { sent, _, _ := reportsSent(g); return len(sent) >= n })
	run.stop()
}

// TestCarry_ReportsRideOnTheNextLease: a worker whose slots are all busy
// sends a finished task's report on the lease call that refills its slot,
// not in a call of its own; every report is sent, once.
func TestCarry_ReportsRideOnTheNextLease(t *testing.T) {
	g := newFakeGrid()
	oneAtATime(t, g, 6)
	sent, _, carried := reportsSent(g)
	if len(sent) != 6 || !sameRefs(sent, refs(tasksOf("j", 6)...)) {
		t.Fatalf("reports sent %v, want each of the 6 tasks once", sent)
	}
	if carried == 0 {
		t.Fatal("no report rode on a lease call")
	}
	for _, c := range g.callsOf("Lease") {
		if len(c.lease.Reports) > 0 && (c.lease.Max != 1 || c.lease.Wait != 0) {
			t.Fatalf("a lease carrying reports asked for %d tasks waiting %v, want its 1 slot and no long poll", c.lease.Max, c.lease.Wait)
		}
	}
}

// TestCarry_NotHeldBackWhileTheLeaseLongPolls: with no work left the
// lease loop is in a long poll, so a finished task's report goes alone at
// once rather than wait for the poll to end.
func TestCarry_NotHeldBackWhileTheLeaseLongPolls(t *testing.T) {
	g := newFakeGrid()
	g.queue(task("j", 0))
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: 1, LeaseWait: time.Hour, Pool: runner})
	runWorker(t, w)
	eventually(t, "the task running and the lease loop long-polling", func() bool {
		return len(runner.started()) == 1 && len(g.callsOf("Lease")) == 2
	})
	close(runner.gate)
	eventually(t, "the report sent alone", func() bool { _, alone, _ := reportsSent(g); return alone == 1 })
}

// TestCarry_OldServerGetsReportsAlone: a server that refuses reports on a
// lease (an older version) applies nothing; the worker sends those
// reports alone, leases without them, and stops carrying any.
func TestCarry_OldServerGetsReportsAlone(t *testing.T) {
	g := newFakeGrid()
	g.oldServer = true
	oneAtATime(t, g, 5)
	sent, _, carried := reportsSent(g)
	if carried != 0 || !sameRefs(sent, refs(tasksOf("j", 5)...)) {
		t.Fatalf("reports sent %v (%d carried), want each of the 5 tasks once, alone", sent, carried)
	}
	tried := 0
	for _, c := range g.callsOf("Lease") {
		if len(c.lease.Reports) > 0 {
			tried++
		}
	}
	if tried > 1 {
		t.Fatalf("%d lease calls carried reports to an old server, want at most the first", tried)
	}
}

// TestCarry_FailedLeaseSendsItsReportsAlone: reports carried by a lease
// call that failed (whether the grid applied them is unknown) are sent
// again alone; every task is still reported and let go.
func TestCarry_FailedLeaseSendsItsReportsAlone(t *testing.T) {
	g := newFakeGrid()
	failed := false
	g.leaseErr = func(n int) error {
		calls := g.calls // under g.mu, as Lease calls leaseErr
		if len(calls) < 2 || failed {
			return nil
		}
		if prev := calls[len(calls)-2]; prev.method == "Report" && prev.carried {
			failed = true
			return errors.New("connection reset")
		}
		return nil
	}
	oneAtATime(t, g, 4)
	reports := g.callsOf("Report")
	var lost *api.ReportRequest
	for i, c := range reports {
		if c.carried && lost == nil {
			lost = c.report
			if i+1 >= len(reports) || reports[i+1].carried || !sameRefsOf(reports[i+1].report.Reports, lost.Reports) {
				t.Fatalf("the reports of the failed lease were not sent again alone next: %+v", reports)
			}
		}
	}
	if lost == nil {
		t.Fatal("no report rode on a lease call")
	}
}

func sameRefsOf(a, b []api.Report) bool {
	var ra, rb []api.TaskRef
	for _, r := range a {
		ra = append(ra, r.TaskRef)
	}
	for _, r := range b {
		rb = append(rb, r.TaskRef)
	}
	return sameRefs(ra, rb)
}

// TestSlots_CarriedReportsLeaseOnlyWhenALeaseIsDue: a batch of reports
// offered to a worker with a deep prefetch frees its slots, but is carried
// (with every free slot leased) only once a lease is due by the batching
// rule; before that it comes back to be sent alone.
func TestSlots_CarriedReportsLeaseOnlyWhenALeaseIsDue(t *testing.T) {
	s := newSlots()
	target := func() leasePlan { return leasePlan{target: 16, batch: 16 / 4} }
	if n := s.acquire(context.Background(), target, 1); n != 16 {
		t.Fatalf("first acquire took %d, want 16", n)
	}
	offer := func(k int) (int, []api.Report) {
		carry := make(chan []api.Report, 1)
		carry <- make([]api.Report, k)
		return s.acquireOrCarry(context.Background(), target, 1, carry)
	}
	if n, batch := offer(2); n != 0 || len(batch) != 2 || s.held != 14 {
		t.Fatalf("2 reports with 16 held: leased %d, batch %d, %d held; want no lease, the batch back, 14 held", n, len(batch), s.held)
	}
	if n, batch := offer(2); n != 4 || len(batch) != 2 || s.held != 16 {
		t.Fatalf("2 more reports: leased %d, batch %d, %d held; want the 4 free slots leased with them, 16 held", n, len(batch), s.held)
	}
}
