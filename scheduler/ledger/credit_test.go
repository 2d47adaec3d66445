package ledger

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

func (a *applier) peer(id string) Peer {
	var p Peer
	a.fsm.View(func(l *Ledger) { p, _ = l.Peer(id) })
	return p
}

// TestLedger_CreditCountsRunTimeOfAcceptedResults: a worker's credit is
// the Duration of its accepted successful reports; failures, late reports
// and other workers' reports add nothing to it.
func TestLedger_CreditCountsRunTimeOfAcceptedResults(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	a.submit("j", 3, 0, 0)
	g := a.lease("w1", 3)
	if len(g) != 3 {
		t.Fatalf("leased %d", len(g))
	}
	report := func(g Grant, kind string, d time.Duration) api.Report {
		return api.Report{TaskRef: g.Ref(), Result: tasks.Result{ErrorKind: kind, Duration: d}}
	}
	resp := a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: []api.Report{
		report(g[0], "", 2*time.Second),
		report(g[1], "trap", 5*time.Second),
		report(g[0], "", time.Hour), // the same task's report again (a retry): accepted, counted once
	}}).([]bool)
	if !resp[0] || !resp[1] || !resp[2] {
		t.Fatalf("accepted %v", resp)
	}
	a.apply(&CompleteTasksCommand{Worker: "w2", Now: a.now, Reports: []api.Report{report(g[2], "", time.Minute)}}) // not w2's lease
	p := a.peer("w1")
	if p.CPUNanos != int64(2*time.Second) || p.Done != 1 || p.Failed != 1 {
		t.Fatalf("credit %v, done %d, failed %d; want 2s, 1 and 1", time.Duration(p.CPUNanos), p.Done, p.Failed)
	}
	restored := snapshotInto(t, a.fsm)
	var q Peer
	restored.View(func(l *Ledger) { q, _ = l.Peer("w1") })
	if q.CPUNanos != p.CPUNanos {
		t.Fatalf("credit after restore %d, want %d", q.CPUNanos, p.CPUNanos)
	}
}

// TestSnapshot_PeerWithoutCreditStillLoads: a snapshot written before
// credit existed (no cpu_ns) restores with zero credit, and a peer with no
// credit writes no cpu_ns, so old and new snapshots read alike.
func TestSnapshot_PeerWithoutCreditStillLoads(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "cpu_ns") {
		t.Fatal("a peer with no credit wrote cpu_ns")
	}
	g := NewFSM()
	if err := g.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	var p Peer
	g.View(func(l *Ledger) { p, _ = l.Peer("w1") })
	if p.ID != "w1" || p.CPUNanos != 0 {
		t.Fatalf("restored %+v", p)
	}
}

// TestLedger_RenewLeasesPushesBackExpiryOfTheWorkersOwnLeases: a renewal
// moves a held lease's expiry to now + timeout + slack, never earlier, and
// leaves alone leases that are not the worker's or not current.
func TestLedger_RenewLeasesPushesBackExpiryOfTheWorkersOwnLeases(t *testing.T) {
	a := newApplier(t)
	a.submit("j", 2, 0, 0) // timeout 1s
	g := a.lease("w1", 1)[0]
	other := a.lease("w2", 1)[0]
	expiry := func(ref api.TaskRef) int64 {
		var e int64
		a.fsm.View(func(l *Ledger) { e, _, _ = l.LeaseExpiry(ref) })
		return e
	}
	first := expiry(g.Ref())
	later := a.now + int64(time.Minute)
	n := a.apply(&RenewLeasesCommand{Worker: "w1", Now: later, Slack: int64(time.Second),
		Tasks: []api.TaskRef{g.Ref(), other.Ref(), {Job: "j", Index: 0, Attempt: 9}}})
	if n != 1 {
		t.Fatalf("renewed %v, want 1", n)
	}
	if want := later + int64(2*time.Second); expiry(g.Ref()) != want {
		t.Fatalf("expiry %d, want %d", expiry(g.Ref()), want)
	}
	if expiry(other.Ref()) != other.Expiry {
		t.Fatal("another worker's lease was renewed")
	}
	var expired []api.TaskRef
	a.fsm.View(func(l *Ledger) { expired = l.ExpiredLeases(first + 1) })
	if len(expired) != 1 || expired[0] != other.Ref() {
		t.Fatalf("expired after renewal: %v; want only %v", expired, other.Ref())
	}
	if n := a.apply(&RenewLeasesCommand{Worker: "w1", Now: a.now, Slack: 0, Tasks: []api.TaskRef{g.Ref()}}); n != 0 {
		t.Fatalf("an earlier renewal brought the expiry forward (%v)", n)
	}
}
