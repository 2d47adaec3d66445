package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// reportRun is a run whose report loop is started once the test has
// queued its reports; the reports hold leases and slots, as a finished
// task's do.
type reportRun struct {
	*run
	t *testing.T
}

func newReportRun(t *testing.T, g *fakeGrid) *reportRun {
	w := testWorker(t, g, Config{Cores: 1, Pool: &fakeRunner{}})
	return &reportRun{run: newRun(w), t: t}
}

// finished queues reports for n finished tasks of job, as runners do.
func (r *reportRun) finished(job string, n int) []api.Report {
	got := r.slots.acquire(context.Background(), func() leasePlan { return leasePlan{target: r.slots.held + n} }, 1)
	if got != n {
		r.t.Fatalf("took %d slots, want %d", got, n)
	}
	reps := make([]api.Report, n)
	for i := range reps {
		reps[i] = api.Report{TaskRef: api.TaskRef{Job: job, Index: i, Attempt: 1}, Result: tasks.Result{Stdout: []byte(fmt.Sprint(i))}}
		r.hold(api.TaskRef{Job: job, Index: i, Attempt: 1}, true)
		r.queueReport(reps[i])
	}
	return reps
}

// start runs the report loop until the reports channel is closed.
func (r *reportRun) start() {
	r.reporting.Add(1)
	go func() { defer r.reporting.Done(); r.reportLoop() }()
	r.t.Cleanup(func() { close(r.reports); r.reporting.Wait() })
}

// settled says no lease or slot is left: every report was sent or given up.
func (r *reportRun) settled() bool {
	r.slots.mu.Lock()
	held := r.slots.held
	r.slots.mu.Unlock()
	return held == 0 && len(r.heldRefs()) == 0
}

// TestReport_FinishedTasksGoInOneBatch: reports that finished while none
// was being sent go in a single call, in order, and then free their leases
// and slots.
func TestReport_FinishedTasksGoInOneBatch(t *testing.T) {
	g := newFakeGrid()
	r := newReportRun(t, g)
	reps := r.finished("j", 3)
	r.start()
	eventually(t, "the reports settled", r.settled)
	calls := g.callsOf("Report")
	if len(calls) != 1 || calls[0].report.Worker != "w1" || !reflect.DeepEqual(calls[0].report.Reports, reps) {
		t.Fatalf("report calls %+v, want one from w1 with %+v", calls, reps)
	}
}

// TestReport_BatchesAreCappedAt256: a backlog is sent in calls of at most
// maxReportBatch reports.
func TestReport_BatchesAreCappedAt256(t *testing.T) {
	g := newFakeGrid()
	r := newReportRun(t, g)
	r.finished("j", 300)
	r.start()
	eventually(t, "the reports settled", r.settled)
	var sizes []int
	for _, c := range g.callsOf("Report") {
		sizes = append(sizes, len(c.report.Reports))
	}
	if !reflect.DeepEqual(sizes, []int{256, 44}) {
		t.Fatalf("batch sizes %v, want [256 44]", sizes)
	}
}

// TestReport_RetriedUntilTheGridTakesThem: a failed report call is sent
// again, the same batch, and the leases stay held until it goes through.
func TestReport_RetriedUntilTheGridTakesThem(t *testing.T) {
	g := newFakeGrid()
	r := newReportRun(t, g)
	var heldDuring []int
	g.onReport = func(n int, req *api.ReportRequest) ([]bool, error) {
		heldDuring = append(heldDuring, len(r.heldRefs()))
		if n < 2 {
			return nil, errors.New("no leader")
		}
		return []bool{true, true}, nil
	}
	reps := r.finished("j", 2)
	r.start()
	eventually(t, "the reports settled", r.settled)
	calls := g.callsOf("Report")
	if len(calls) != 3 {
		t.Fatalf("%d report calls, want 3 (two failed)", len(calls))
	}
	for _, c := range calls {
		if !reflect.DeepEqual(c.report.Reports, reps) {
			t.Fatalf("a retry sent %+v, want the same batch %+v", c.report.Reports, reps)
		}
	}
	if !reflect.DeepEqual(heldDuring, []int{2, 2, 2}) {
		t.Fatalf("leases held during the calls: %v, want both held until the report went through", heldDuring)
	}
}

// TestReport_IgnoredReportIsSettledNotRetried: a report the grid took but
// did not accept (a late attempt) is not sent again; its lease and slot are
// freed like any other.
func TestReport_IgnoredReportIsSettledNotRetried(t *testing.T) {
	g := newFakeGrid()
	g.onReport = func(n int, req *api.ReportRequest) ([]bool, error) { return []bool{false, true}, nil }
	r := newReportRun(t, g)
	r.finished("j", 2)
	r.start()
	eventually(t, "the reports settled", r.settled)
	if n := len(g.callsOf("Report")); n != 1 {
		t.Fatalf("%d report calls, want 1", n)
	}
}

// TestReport_LingerGrowsWithTaskTime: a batch waits for a lease's worth of
// tasks (a quarter of the target), at least lingerReports, to finish on the
// worker's cores, within bounds.
func TestReport_LingerGrowsWithTaskTime(t *testing.T) {
	for _, c := range []struct {
		cores int
		avg   time.Duration
		want  time.Duration
		due   int
	}{
		{1, 0, minReportLinger, 0},                                  // nothing ran yet
		{1, 5 * time.Microsecond, minReportLinger, 0},               // tiny tasks: left to the timer
		{2, 200 * time.Microsecond, 16 * time.Millisecond, 128},     // a quarter of 2+512 (prefetch capped) is 128 tasks: 64 a core, 12.8 ms, and a quarter more
		{2, 2 * time.Millisecond, 157500 * time.Microsecond, 126},   // half of 2+2*125 is 126 tasks, 126 ms: due when they have finished, and a quarter more
		{2, 3500 * time.Microsecond, 157500 * time.Microsecond, 72}, // half of 2+2*71 is 72 tasks
		{1, time.Second, maxReportLinger, lingerReports},            // long tasks: bounded
		{2, 400 * time.Microsecond, 32 * time.Millisecond, 128},     // 514 capped: half (257) would leave 51 ms of work, so a quarter
	} {
		w := testWorker(t, newFakeGrid(), Config{Cores: c.cores, Pool: &fakeRunner{}})
		r := newRun(w)
		r.avgNs.Store(int64(c.avg))
		if got, due := r.reportLinger(); got != c.want || due != c.due {
			t.Errorf("%d cores, tasks of %v: linger %v, due at %d; want %v, %d", c.cores, c.avg, got, due, c.want, c.due)
		}
	}
}

// TestReport_OneCallPerLeaseWorthOfTasks: a worker running tasks of a few
// milliseconds on two cores reports them in batches of a quarter of its
// target, each on the lease call that refills their slots: a few calls
// for 300 tasks, where a batch of lingerReports tasks (the linger before)
// made about 40. Each call is a Raft entry, whose cost to the grid's
// process (HTTP, an fsync, dozens of wake-ups) was a tenth of a core.
func TestReport_OneCallPerLeaseWorthOfTasks(t *testing.T) {
	const n = 300
	g := runMillisecondTasks(t, n)
	calls := 0
	for _, c := range g.callsOf("Report") {
		calls++
		if len(c.report.Reports) == 0 {
			t.Fatal("a report call with no reports")
		}
	}
	if calls > n/20 {
		t.Fatalf("%d calls reported %d tasks of 2 ms on 2 cores, want at most %d", calls, n, n/20)
	}
	t.Logf("%d calls for %d tasks", calls, n)
}

// TestReport_NotHeldBackWhenNothingElseCanFinish: with no other lease
// held, a batch goes at once however long the linger (a one-task job's
// result is not delayed); with one more held, it waits for that report.
func TestReport_NotHeldBackWhenNothingElseCanFinish(t *testing.T) {
	r := newReportRun(t, newFakeGrid())
	// gather queues first as a runner does and gathers a batch from it, as
	// the report loop does.
	gather := func(first api.Report) <-chan []api.Report {
		r.queueReport(first)
		out := make(chan []api.Report, 1)
		go func() { out <- r.gatherReports(<-r.reports, time.Hour) }()
		return out
	}
	wait := func(out <-chan []api.Report, want int) {
		t.Helper()
		select {
		case batch := <-out:
			if len(batch) != want {
				t.Fatalf("batch of %d reports, want %d", len(batch), want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the batch of %d was held back for the hour's linger", want)
		}
	}
	lone := api.Report{TaskRef: api.TaskRef{Job: "j", Index: 0, Attempt: 1}}
	r.hold(lone.TaskRef, true)
	wait(gather(lone), 1)

	second := api.Report{TaskRef: api.TaskRef{Job: "j", Index: 1, Attempt: 1}}
	r.hold(second.TaskRef, true)
	out := gather(lone)
	r.queueReport(second)
	wait(out, 2)
}

// TestReport_LingerIsNotWokenForEachReport: while a batch lingers, the
// report loop sleeps through the reports that arrive (each wake-up of it
// cost the worker's process a thread's wake-up or two, taken from the busy
// executors); it is woken once, when every lease held has finished.
func TestReport_LingerIsNotWokenForEachReport(t *testing.T) {
	const n = 50
	r := newReportRun(t, newFakeGrid())
	reps := make([]api.Report, n)
	for i := range reps {
		reps[i] = api.Report{TaskRef: api.TaskRef{Job: "j", Index: i, Attempt: 1}}
		r.hold(reps[i].TaskRef, true)
	}
	r.queueReport(reps[0])
	out := make(chan []api.Report, 1)
	go func() { out <- r.gatherReports(<-r.reports, time.Hour) }()
	eventually(t, "the loop lingering", lingering)
	for _, rep := range reps[1 : n-1] {
		r.queueReport(rep)
	}
	// A loop woken for each report would take them off the channel at once;
	// this one leaves them there until the batch is due. (A loop that is
	// slow to run could pass this check wrongly; never the other way.)
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if len(r.reports) < n-2 {
			t.Fatalf("the lingering loop took reports before its batch was due (%d of %d left)", len(r.reports), n-2)
		}
		runtime.Gosched()
	}
	r.queueReport(reps[n-1]) // every lease held has finished: the batch is due
	select {
	case batch := <-out:
		if len(batch) != n {
			t.Fatalf("batch of %d reports, want %d", len(batch), n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the batch was held back for the hour's linger though every lease had finished")
	}
	if woke := r.lingerWakes.Load(); woke > 2 {
		t.Fatalf("the lingering loop was woken %d times for %d reports, want at most 2", woke, n)
	}
}

// lingering says whether a goroutine sleeps in gatherReports' select.
func lingering() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "(*run).gatherReports") {
			return true
		}
	}
	return false
}

// TestLease_MillisecondTasksTakeAnEntryPerHalfTarget: a worker running
// tasks of a few milliseconds on two cores leases, and reports, half its
// target at a time, each lease carrying the reports that freed its slots:
// about one grid call that changes the ledger (one Raft entry) per 126
// tasks, where a quarter of the target at a time made twice as many. Each
// entry cost the grid's process an fsync, an HTTP call and dozens of
// wake-ups, taken from the executors.
func TestLease_MillisecondTasksTakeAnEntryPerHalfTarget(t *testing.T) {
	const n = 1000
	g := runMillisecondTasks(t, n)
	entries := ledgerChangingCalls(g)
	if entries > n/70 {
		t.Fatalf("%d calls changed the ledger for %d tasks of 2 ms on 2 cores, want at most %d", entries, n, n/70)
	}
	t.Logf("%d calls changed the ledger for %d tasks", entries, n)
}

// ledgerChangingCalls counts the calls that would each be a Raft entry:
// leases that granted tasks or carried reports, and reports sent alone.
func ledgerChangingCalls(g *fakeGrid) int {
	n := 0
	for _, c := range g.allCalls() {
		switch {
		case c.method == "Lease" && (len(c.granted) > 0 || len(c.lease.Reports) > 0):
			n++
		case c.method == "Report" && !c.carried:
			n++
		}
	}
	return n
}

// runMillisecondTasks runs n tasks of 2 ms each on a 2-core worker until
// every one is reported, and returns the grid that saw its calls.
func runMillisecondTasks(t *testing.T, n int) *fakeGrid {
	t.Helper()
	g := newFakeGrid()
	g.queue(tasksOf("j", n)...)
	busy := func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
		time.Sleep(2 * time.Millisecond) // the task's compute
		return &wasm.Result{Stdout: []byte("ok"), Engine: "fake"}, nil
	}
	w := testWorker(t, g, Config{Cores: 2, Pool: &fakeRunner{run: busy}})
	run := runWorker(t, w)
	eventually(t, "every task reported", func() bool { return reportedCount(g) == n })
	run.stop()
	return g
}
