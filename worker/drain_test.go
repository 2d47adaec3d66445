package worker

import (
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestDrain_HandsBackUnstartedLeasesAndLetsRunningOnesFinish: on stop a
// worker stops leasing, says it is draining, hands back at once every
// lease it had not started (one release each), and waits for the running
// task, whose report it then sends.
func TestDrain_HandsBackUnstartedLeasesAndLetsRunningOnesFinish(t *testing.T) {
	g := newFakeGrid()
	leased := tasksOf("j", 3)
	g.queue(leased...)
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: 2, DrainGrace: time.Minute, Pool: runner})
	run := runWorker(t, w)
	eventually(t, "1 task running", func() bool { return len(runner.started()) == 1 })
	run.cancel() // SIGTERM
	eventually(t, "2 leases handed back", func() bool { return len(g.callsOf("Release")) == 2 })
	if run.returned() {
		t.Fatal("Run returned with a task still running")
	}
	runner.gate <- struct{}{}
	run.stop()

	var released []api.TaskRef
	for _, c := range g.callsOf("Release") {
		if c.release.Worker != "w1" || len(c.release.Tasks) != 1 {
			t.Fatalf("release %+v, want one task of w1", *c.release)
		}
		released = append(released, c.release.Tasks...)
	}
	if want := refs(leased[1:]...); !sameRefs(released, want) {
		t.Fatalf("handed back %v, want the unstarted %v", released, want)
	}
	reports := g.callsOf("Report")
	if len(reports) != 1 || len(reports[0].report.Reports) != 1 || reports[0].report.Reports[0].Index != 0 ||
		string(reports[0].report.Reports[0].Stdout) != "ok" {
		t.Fatalf("reports %+v, want the running task's", reports)
	}
	if n := len(runner.started()); n != 1 {
		t.Fatalf("%d tasks started, want only the one running before the stop", n)
	}
	assertDrainOrder(t, g.allCalls())
}

// assertDrainOrder checks that a draining heartbeat came before any lease
// was handed back, and no lease call after it.
func assertDrainOrder(t *testing.T, calls []call) {
	t.Helper()
	draining := slices.IndexFunc(calls, func(c call) bool { return c.method == "Heartbeat" && c.heartbeat.Draining })
	if draining < 0 {
		t.Fatal("no draining heartbeat")
	}
	for _, c := range calls[draining:] {
		if c.method == "Lease" {
			t.Fatal("a lease call after the draining heartbeat")
		}
	}
	for _, c := range calls[:draining] {
		if c.method == "Release" {
			t.Fatal("a lease handed back before the draining heartbeat")
		}
	}
}

// TestDrain_GraceOverStopsRunningTasksAndHandsThemBack: a task still
// running when the drain grace ends is stopped and handed back, not
// reported as a failure.
func TestDrain_GraceOverStopsRunningTasksAndHandsThemBack(t *testing.T) {
	g := newFakeGrid()
	slow := task("slow", 0)
	g.queue(slow)
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: -1, DrainGrace: 20 * time.Millisecond, Pool: runner})
	run := runWorker(t, w)
	eventually(t, "the task running", func() bool { return len(runner.started()) == 1 })
	run.stop()
	if got := runner.cancelledNames(); !slices.Equal(got, []string{slow.Name}) {
		t.Fatalf("stopped %v, want the running task", got)
	}
	releases := g.callsOf("Release")
	if len(releases) != 1 || !sameRefs(releases[0].release.Tasks, refs(slow)) {
		t.Fatalf("releases %+v, want the stopped task handed back", releases)
	}
	if n := len(g.callsOf("Report")); n != 0 {
		t.Fatalf("%d reports of a task stopped by the drain", n)
	}
	assertDrainOrder(t, g.allCalls())
}
