package ledger

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

func replicaSpec(n, r, q, m int) tasks.JobSpec {
	return tasks.JobSpec{Name: "rep", ModuleHash: storage.Hash(testModule), Tasks: n, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 2, Replicas: r, Quorum: q, MaxReplicas: m, NoCache: true}
}

// workers marks each worker alive.
func (a *applier) workers(ids ...string) {
	a.t.Helper()
	for _, id := range ids {
		a.apply(&UpsertPeerCommand{ID: id, Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	}
}

func (a *applier) submitSpec(id string, spec tasks.JobSpec) {
	a.t.Helper()
	if resp := a.apply(&SubmitJobCommand{ID: id, Spec: spec, Now: a.now}); resp != id {
		a.t.Fatalf("submit %s: %v", id, resp)
	}
	a.checkIndexes()
}

// vote reports a successful result with stdout out for grant g.
func (a *applier) vote(worker string, g Grant, out string) bool {
	a.t.Helper()
	resp := a.apply(&CompleteTasksCommand{Worker: worker, Now: a.now, Reports: []api.Report{{
		TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(out), Duration: time.Second},
	}}})
	a.checkIndexes()
	return resp.([]bool)[0]
}

func (a *applier) leaseOne(worker string) (Grant, bool) {
	a.t.Helper()
	g := a.lease(worker, 1)
	a.checkIndexes()
	if len(g) == 0 {
		return Grant{}, false
	}
	return g[0], true
}

func (a *applier) mustLease(worker string) Grant {
	a.t.Helper()
	g, ok := a.leaseOne(worker)
	if !ok {
		a.t.Fatalf("%s leased nothing", worker)
	}
	return g
}

func (a *applier) taskStatus(job string, idx int) api.TaskStatus {
	a.t.Helper()
	var st *api.JobStatus
	a.fsm.View(func(l *Ledger) { st, _ = l.JobStatus(job) })
	return st.TaskStats[idx]
}

func verdicts(st api.TaskStatus) string {
	var v []string
	for _, r := range st.Replicas {
		v = append(v, r.Worker+":"+r.Verdict)
	}
	return strings.Join(v, " ")
}

// TestReplicas_QuorumReachedKeepsOneResult: R=3, Q=2 runs three replicas
// on three workers; two agreeing votes make the task done with their
// stdout, the third replica is dropped and its late report ignored.
func TestReplicas_QuorumReachedKeepsOneResult(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3")
	a.submitSpec("j", replicaSpec(1, 3, 2, 0))
	g1, g2, g3 := a.mustLease("w1"), a.mustLease("w2"), a.mustLease("w3")
	if g1.Attempt == g2.Attempt || g2.Attempt == g3.Attempt {
		t.Fatalf("replicas share an attempt: %v %v %v", g1, g2, g3)
	}
	if _, ok := a.leaseOne("w1"); ok {
		t.Fatal("w1 got a second replica of the same task")
	}
	if !a.vote("w1", g1, "42") {
		t.Fatal("w1's vote refused")
	}
	if st := a.taskStatus("j", 0); st.State != tasks.TaskLeased {
		t.Fatalf("after one vote: %s", st.State)
	}
	a.vote("w2", g2, "42")
	st := a.taskStatus("j", 0)
	if st.State != tasks.TaskDone || verdicts(st) != "w1:agreed w2:agreed" {
		t.Fatalf("after two agreeing votes: %s %q", st.State, verdicts(st))
	}
	res := a.results("j")[0]
	if string(res.Stdout) != "42" || res.Worker != "w1" {
		t.Fatalf("agreed result %q from %s", res.Stdout, res.Worker)
	}
	if a.vote("w3", g3, "42") {
		t.Fatal("the dropped third replica's report was accepted")
	}
	if p := a.peer("w1"); p.Agreed != 1 || p.Streak != 1 || p.Done != 1 {
		t.Fatalf("w1's record: %+v", p)
	}
	if s, _ := a.summary("j"); s.State != tasks.JobComplete {
		t.Fatalf("job %s", s.State)
	}
}

func (a *applier) results(job string) []api.TaskResult {
	var page *api.ResultsPage
	a.fsm.View(func(l *Ledger) { page, _ = l.Results(job, 0, 1000, 1<<30) })
	return page.Results
}

func (a *applier) summary(job string) (api.JobSummary, bool) {
	var s api.JobSummary
	var ok bool
	a.fsm.View(func(l *Ledger) { s, ok = l.JobSummary(job) })
	return s, ok
}

// TestReplicas_DisagreementSchedulesAnotherReplica: two votes that differ
// under R=2, Q=2 leave the task wanting a third replica; its vote decides,
// and the worker it outvoted gets a strike.
func TestReplicas_DisagreementSchedulesAnotherReplica(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3")
	a.submitSpec("j", replicaSpec(1, 2, 2, 4))
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	if _, ok := a.leaseOne("w3"); ok {
		t.Fatal("a third replica before any disagreement")
	}
	a.vote("w1", g1, "right")
	a.vote("w2", g2, "wrong")
	if st := a.taskStatus("j", 0); st.State != tasks.TaskQueued || verdicts(st) != "w1:pending w2:pending" {
		t.Fatalf("after a disagreement: %s %q", st.State, verdicts(st))
	}
	g3 := a.mustLease("w3")
	a.vote("w3", g3, "right")
	st := a.taskStatus("j", 0)
	if st.State != tasks.TaskDone || verdicts(st) != "w1:agreed w2:outvoted w3:agreed" {
		t.Fatalf("after the third vote: %s %q", st.State, verdicts(st))
	}
	if string(a.results("j")[0].Stdout) != "right" {
		t.Fatalf("result %q", a.results("j")[0].Stdout)
	}
	if p := a.peer("w2"); p.Outvoted != 1 || p.Strikes != 1 || p.Streak != 0 || p.Done != 0 || p.CPUNanos != 0 {
		t.Fatalf("the outvoted worker's record: %+v", p)
	}
	if st.Replicas[1].Hash == st.Replicas[0].Hash || st.Replicas[0].Hash != tasks.ResultHash(0, (&tasks.Result{Stdout: []byte("right")}).StdoutSum()) {
		t.Fatalf("hashes: %+v", st.Replicas)
	}
}

// TestReplicas_NoQuorumAfterMaxReplicas: votes that never agree fail the
// task as no_quorum once max_replicas voted, naming each hash and worker.
func TestReplicas_NoQuorumAfterMaxReplicas(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3", "w4")
	a.submitSpec("j", replicaSpec(1, 2, 2, 3))
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	a.vote("w1", g1, "a")
	a.vote("w2", g2, "b")
	a.vote("w3", a.mustLease("w3"), "c")
	st := a.taskStatus("j", 0)
	if st.State != tasks.TaskFailed || st.ErrorKind != tasks.ErrNoQuorum {
		t.Fatalf("after 3 different votes of max 3: %s %s", st.State, st.ErrorKind)
	}
	for _, want := range []string{"no quorum after 3 replicas (need 2 agreeing)", "(w1)", "(w2)", "(w3)", st.Replicas[0].Hash[:16]} {
		if !strings.Contains(st.Error, want) {
			t.Errorf("error %q lacks %q", st.Error, want)
		}
	}
	if _, ok := a.leaseOne("w4"); ok {
		t.Fatal("a failed task was leased")
	}
	if p := a.peer("w1"); p.Outvoted != 0 || p.Strikes != 0 {
		t.Fatalf("no_quorum blamed w1: %+v", p)
	}
}

// TestReplicas_DistinctCredentials: a worker does not take a replica of a
// task another worker of its join credential runs, while a worker of
// another credential is alive; with none, it does.
func TestReplicas_DistinctCredentials(t *testing.T) {
	a := newApplier(t)
	a.credential("tok-liar", api.CredWorker, -1, 0)
	a.credential("tok-honest", api.CredWorker, -1, 0)
	a.join("tok-liar", "l1", "p-l1", a.now)
	a.join("tok-liar", "l2", "p-l2", a.now)
	a.join("tok-honest", "h1", "p-h1", a.now)
	a.workers("l1", "l2", "h1")
	a.submitSpec("j", replicaSpec(1, 2, 2, 0))
	a.mustLease("l1")
	if _, ok := a.leaseOne("l2"); ok {
		t.Fatal("l2 took a replica beside l1, of the same credential")
	}
	a.apply(&UpsertPeerCommand{ID: "h1", State: api.PeerDown, Now: a.now})
	if _, ok := a.leaseOne("l2"); !ok {
		t.Fatal("with no worker of another credential alive, l2 still got nothing")
	}
}

// TestReplicas_CredentialsDoubleUpRatherThanStall: with two credentials
// and R=3, the third replica goes to a second worker of a credential the
// task has, since no worker of a new credential exists to take it.
func TestReplicas_CredentialsDoubleUpRatherThanStall(t *testing.T) {
	a := newApplier(t)
	a.credential("tok-a", api.CredWorker, -1, 0)
	a.credential("tok-b", api.CredWorker, -1, 0)
	a.join("tok-a", "a1", "p-a1", a.now)
	a.join("tok-a", "a2", "p-a2", a.now)
	a.join("tok-b", "b1", "p-b1", a.now)
	a.workers("a1", "a2", "b1")
	a.submitSpec("j", replicaSpec(1, 3, 2, 0))
	a.mustLease("a1")
	if _, ok := a.leaseOne("a2"); ok {
		t.Fatal("a2 doubled tok-a while b1 (tok-b) could take the replica")
	}
	a.mustLease("b1")
	if _, ok := a.leaseOne("a2"); !ok {
		t.Fatal("a2 got nothing though no worker of a third credential exists")
	}
}

// TestReplicas_PerReplicaExpiryReleaseAndCancel: an expired replica is a
// failed attempt and a released one counts nothing; each leaves the other
// replica running and the task wanting one more; a cancel ends them all.
func TestReplicas_PerReplicaExpiryReleaseAndCancel(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3", "w4")
	a.submitSpec("j", replicaSpec(1, 2, 2, 0))
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	if n := a.apply(&ExpireLeasesCommand{Now: a.now, Reason: "worker down", Tasks: []api.TaskRef{g1.Ref()}}); n != 1 {
		t.Fatalf("expired %v", n)
	}
	a.checkIndexes()
	st := a.taskStatus("j", 0)
	if st.State != tasks.TaskLeased || verdicts(st) != "w1:expired w2:running" {
		t.Fatalf("after w1's lease expired: %s %q", st.State, verdicts(st))
	}
	var held []api.TaskRef
	a.fsm.View(func(l *Ledger) { held = l.LeasesOf("w2") })
	if len(held) != 1 || held[0] != g2.Ref() {
		t.Fatalf("w2 holds %v", held)
	}
	g3 := a.mustLease("w3")
	if n := a.apply(&ReleaseTasksCommand{Worker: "w2", Now: a.now, Tasks: []api.TaskRef{g2.Ref()}}); n != 1 {
		t.Fatalf("released %v", n)
	}
	a.checkIndexes()
	if st := a.taskStatus("j", 0); verdicts(st) != "w1:expired w3:running" {
		t.Fatalf("after w2 released: %q", verdicts(st))
	}
	if n := a.apply(&RenewLeasesCommand{Worker: "w3", Now: a.now + int64(time.Minute), Slack: 1, Tasks: []api.TaskRef{g3.Ref()}}); n != 1 {
		t.Fatalf("renewed %v", n)
	}
	g4 := a.mustLease("w4")
	if err := a.apply(&CancelJobCommand{ID: "j", Now: a.now}); err != nil {
		t.Fatal(err)
	}
	a.checkIndexes()
	st = a.taskStatus("j", 0)
	if st.State != tasks.TaskFailed || st.ErrorKind != "cancelled" {
		t.Fatalf("after cancel: %s %s", st.State, st.ErrorKind)
	}
	if a.vote("w4", g4, "x") {
		t.Fatal("a cancelled replica's report was accepted")
	}
	a.fsm.View(func(l *Ledger) {
		if l.nLeases != 0 || len(l.byWorker) != 0 {
			t.Fatalf("leases left after cancel: %d, held by %d workers", l.nLeases, len(l.byWorker))
		}
	})
}

// TestReplicas_FailedAttemptsCountAgainstRetries: a replica's failure
// requeues that replica; failures beyond retries fail the task.
func TestReplicas_FailedAttemptsCountAgainstRetries(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3", "w4")
	spec := replicaSpec(1, 2, 2, 0)
	spec.Retries = 1
	a.submitSpec("j", spec)
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	a.complete("w1", g1, "trap")
	a.checkIndexes()
	g3 := a.mustLease("w3")
	a.vote("w2", g2, "x")
	a.complete("w3", g3, "trap")
	st := a.taskStatus("j", 0)
	if st.State != tasks.TaskFailed || st.ErrorKind != "trap" || verdicts(st) != "w1:failed w2:pending w3:failed" {
		t.Fatalf("after two failures with retries 1: %s %s %q", st.State, st.ErrorKind, verdicts(st))
	}
	if p := a.peer("w1"); p.Failed != 1 {
		t.Fatalf("w1 %+v", p)
	}
}

// liarRound runs one task of an R=3, Q=2 job on w1, w2 and the liar.
func (a *applier) liarRound(job string) {
	a.t.Helper()
	a.submitSpec(job, replicaSpec(1, 3, 2, 0))
	g1, g2, gl := a.mustLease("w1"), a.mustLease("w2"), a.mustLease("liar")
	a.vote("liar", gl, "lie")
	a.vote("w1", g1, "truth")
	a.vote("w2", g2, "truth")
}

// TestReplicas_DistrustStopsLeasingAndRequeuesUncheckedResults: a liar
// outvoted three times (more than 5% of its votes) is distrusted: leased
// nothing, its held leases handed back, and its unchecked result in an
// unfinished R=1 job queued again; an operator's trust clears it.
func TestReplicas_DistrustStopsLeasingAndRequeuesUncheckedResults(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "liar")
	a.submit("plain", 2, 0, 5) // priority 5: leased first
	gp := a.mustLease("liar")
	a.complete("liar", gp, "")
	held := a.mustLease("liar") // the plain job's second task
	for i := range 3 {
		if p := a.peer("liar"); p.Distrusted {
			t.Fatalf("distrusted after %d outvotes: %+v", i, p)
		}
		a.liarRound(fmt.Sprint("r", i))
	}
	p := a.peer("liar")
	if !p.Distrusted || p.Outvoted != 3 || p.Strikes != 3 {
		t.Fatalf("liar's record after 3 outvotes: %+v", p)
	}
	if err, _ := a.apply(&LeaseTasksCommand{Worker: "liar", Max: 1, Now: a.now}).(error); !errors.Is(err, ErrDistrusted) {
		t.Fatalf("lease to a distrusted worker: %v", err)
	}
	if st := a.taskStatus("plain", gp.Index); st.State != tasks.TaskQueued {
		t.Fatalf("the liar's unchecked result: %s", st.State)
	}
	if st := a.taskStatus("plain", held.Index); st.State != tasks.TaskQueued {
		t.Fatalf("the liar's held lease: %s", st.State)
	}
	if a.complete("liar", held, "") {
		t.Fatal("a distrusted worker's report of a handed-back lease was accepted")
	}
	if g := a.mustLease("w1"); g.Job != "plain" {
		t.Fatalf("w1 leased %v", g)
	}
	if err := a.apply(&TrustPeerCommand{ID: "liar", Now: a.now}); err != nil {
		t.Fatal(err)
	}
	if p := a.peer("liar"); p.Distrusted || p.Strikes != 0 || p.Streak != 0 || p.Outvoted != 3 {
		t.Fatalf("after trust: %+v", p)
	}
	a.submit("after", 1, 0, 0)
	if _, ok := a.leaseOne("liar"); !ok {
		t.Fatal("a trusted worker got nothing")
	}
	if err, _ := a.apply(&TrustPeerCommand{ID: "nobody", Now: a.now}).(error); !errors.Is(err, ErrUnknownWorker) {
		t.Fatalf("trust of an unknown worker: %v", err)
	}
}

// TestReplicas_OneOutvoteAmongManyAgreedIsNoDistrust: the 5% rule lets a
// worker with a long record lose a few votes.
func TestReplicas_OneOutvoteAmongManyAgreedIsNoDistrust(t *testing.T) {
	p := &Peer{Agreed: 100, Outvoted: 3, Strikes: 3}
	if p.untrustworthy() {
		t.Fatalf("%+v is distrusted", p)
	}
	p = &Peer{Agreed: 10, Outvoted: 3, Strikes: 3}
	if !p.untrustworthy() {
		t.Fatalf("%+v is trusted", p)
	}
}

// TestReplicas_AdaptiveCheckRateFallsWithStreak: the sampled check rate
// is 1 at streak 0, near 10/(10+streak) above, never below 5%.
func TestReplicas_AdaptiveCheckRateFallsWithStreak(t *testing.T) {
	const n = 20000
	for _, c := range []struct {
		streak int
		want   float64
	}{{0, 1}, {10, 0.5}, {90, 0.1}, {1000, 0.05}, {1 << 30, 0.05}} {
		checked := 0
		for i := range n {
			if adaptiveCheck(c.streak, uint64(i)*7919, i) {
				checked++
			}
		}
		if got := float64(checked) / n; got < c.want-0.02 || got > c.want+0.02 {
			t.Errorf("streak %d: checked %.3f, want %.2f", c.streak, got, c.want)
		}
	}
}

// TestReplicas_AdaptiveChecksNewAndOutvotedWorkers: an adaptive task first
// leased to a worker with no streak is checked (two replicas); a worker
// with a long streak is mostly not; once outvoted it is checked again.
func TestReplicas_AdaptiveChecksNewAndOutvotedWorkers(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3")
	jobs := 0
	// checkedRate leases draws fresh tasks of a new adaptive job to worker
	// and says how many of them are checked.
	checkedRate := func(worker string, draws int) float64 {
		jobs++
		id := fmt.Sprint("adaptive", jobs)
		spec := replicaSpec(draws, 0, 0, 0)
		spec.Adaptive, spec.Priority = true, 20
		a.submitSpec(id, spec)
		checked := 0
		for i := range draws {
			g, _ := a.apply(&LeaseTasksCommand{Worker: worker, Max: 1, Now: a.now, Draw: uint64(i) * 0x9e3779b97f4a7c15}).([]Grant)
			if len(g) == 0 || g[0].Job != id {
				t.Fatalf("lease %d of %s: %v", i, id, g)
			}
			if st := a.taskStatus(id, g[0].Index); len(st.Replicas) == 1 && a.wantsReplica(id, g[0].Index) {
				checked++
			}
		}
		a.apply(&CancelJobCommand{ID: id, Now: a.now})
		a.checkIndexes()
		return float64(checked) / float64(draws)
	}
	if r := checkedRate("w1", 20); r != 1 {
		t.Fatalf("a new worker's rate %.2f, want 1", r)
	}
	a.setStreak("w2", 190)
	if r := checkedRate("w2", 60); r > 0.3 {
		t.Fatalf("a long-trusted worker's rate %.2f, want about 0.05", r)
	}
	a.submitSpec("r", replicaSpec(1, 3, 2, 0))
	g1, g3, g2 := a.mustLease("w1"), a.mustLease("w3"), a.mustLease("w2")
	a.vote("w2", g2, "lie")
	a.vote("w1", g1, "truth")
	a.vote("w3", g3, "truth")
	if p := a.peer("w2"); p.Streak != 0 || p.Outvoted != 1 {
		t.Fatalf("w2 after an outvote: %+v", p)
	}
	if r := checkedRate("w2", 20); r != 1 {
		t.Fatalf("a just-outvoted worker's rate %.2f, want 1", r)
	}
}

// wantsReplica reports whether a task wants another replica (is checked).
func (a *applier) wantsReplica(job string, idx int) bool {
	var q bool
	a.fsm.View(func(l *Ledger) { q = l.jobs[job].Tasks.at(idx).Rep.Queued })
	return q
}

// setStreak gives a worker a record of n checked, agreed results (R=2
// jobs it and a partner agree on).
func (a *applier) setStreak(worker string, n int) {
	a.t.Helper()
	spec := replicaSpec(n, 2, 2, 0)
	spec.Priority = 10 // before any other job
	a.submitSpec("streak-"+worker, spec)
	partner := "w1"
	for range n {
		g, _ := a.apply(&LeaseTasksCommand{Worker: worker, Max: 1, Now: a.now}).([]Grant)
		h, _ := a.apply(&LeaseTasksCommand{Worker: partner, Max: 1, Now: a.now}).([]Grant)
		if len(g) != 1 || len(h) != 1 || g[0].Job != "streak-"+worker || h[0].Index != g[0].Index {
			a.t.Fatalf("streak leases %v %v", g, h)
		}
		a.vote(worker, g[0], "ok")
		a.vote(partner, h[0], "ok")
	}
	if p := a.peer(worker); p.Streak < n {
		a.t.Fatalf("streak %d, want %d", p.Streak, n)
	}
}

// TestReplicas_CacheNeedsQuorumAgreeingResults: a job with quorum 2 takes
// from the cache only results that had two agreeing replicas.
func TestReplicas_CacheNeedsQuorumAgreeingResults(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2")
	one := replicaSpec(1, 0, 0, 0)
	one.NoCache = false
	a.submitSpec("one", one)
	a.complete("w1", a.mustLease("w1"), "")
	two := one
	two.Replicas, two.Quorum = 2, 2
	a.submitSpec("two", two)
	if st := a.taskStatus("two", 0); st.CachedFrom != nil {
		t.Fatalf("a quorum-2 task took a one-worker result: %+v", st.CachedFrom)
	}
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	a.vote("w1", g1, "x")
	a.vote("w2", g2, "x")
	a.submitSpec("again", two)
	if st := a.taskStatus("again", 0); st.CachedFrom == nil || st.CachedFrom.Job != "two" || st.CachedFrom.Agreed != 2 {
		t.Fatalf("a quorum-2 resubmit: %+v", st.CachedFrom)
	}
}

// TestReplicas_SubmitHasItsOwnCommandType: a job with replicas is
// submitted as type 29, so a server that does not know replicas stops
// rather than run it once per task; one without stays type 27.
func TestReplicas_SubmitHasItsOwnCommandType(t *testing.T) {
	c := &SubmitJobCommand{ID: "j", Spec: replicaSpec(1, 2, 2, 0)}
	data, _ := Encode(c)
	if CommandType(data[0]) != cmdSubmitJobReplicated {
		t.Fatalf("type %d", data[0])
	}
	c.Spec.Replicas = 0
	data, _ = Encode(c)
	if CommandType(data[0]) != cmdSubmitJobCached {
		t.Fatalf("type %d", data[0])
	}
	trust, _ := Encode(&TrustPeerCommand{ID: "w"})
	if CommandType(trust[0]) != 31 {
		t.Fatalf("trust type %d", trust[0])
	}
}

// TestReplicas_HasWorkForSaysWhetherALeaseWouldGrant: a worker holding
// the only replica-wanting task's other replica has no work (so the
// leader does not commit empty leases for it), another worker has, and a
// distrusted one has none.
func TestReplicas_HasWorkForSaysWhetherALeaseWouldGrant(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2")
	a.submitSpec("j", replicaSpec(1, 2, 2, 0))
	a.mustLease("w1")
	a.fsm.View(func(l *Ledger) {
		if l.HasWorkFor("w1", nil) || !l.HasWorkFor("w2", nil) {
			t.Fatalf("HasWorkFor w1 %v, w2 %v; want false, true", l.HasWorkFor("w1", nil), l.HasWorkFor("w2", nil))
		}
		l.peers["w2"].Distrusted = true // as distrust would
		if l.HasWorkFor("w2", nil) {
			t.Fatal("a distrusted worker has work")
		}
	})
}

// TestReplicas_DistrustRerunsAnAdaptiveUncheckedResultChecked: a result
// an adaptive job took unchecked from a worker later distrusted, in a job
// not finished, is run again, now checked by two agreeing replicas; the
// discarded vote stays as evidence.
func TestReplicas_DistrustRerunsAnAdaptiveUncheckedResultChecked(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "liar")
	a.setStreak("liar", 30)
	spec := replicaSpec(2, 0, 0, 0)
	spec.Adaptive, spec.Priority = true, -10 // after the liar's rounds
	a.submitSpec("adaptive", spec)
	draw := uint64(0)
	for adaptiveCheck(30, draw, 0) {
		draw++
	}
	g, _ := a.apply(&LeaseTasksCommand{Worker: "liar", Max: 1, Now: a.now, Draw: draw}).([]Grant)
	if len(g) != 1 || g[0] != (Grant{Job: "adaptive", Index: 0, Attempt: 1, Expiry: g[0].Expiry}) {
		t.Fatalf("liar's lease: %v", g)
	}
	a.vote("liar", g[0], "lie")
	if st := a.taskStatus("adaptive", 0); st.State != tasks.TaskDone || verdicts(st) != "liar:agreed" {
		t.Fatalf("an unchecked task after its one vote: %s %q", st.State, verdicts(st))
	}
	for i := range 3 {
		a.liarRound(fmt.Sprint("r", i))
	}
	if p := a.peer("liar"); !p.Distrusted {
		t.Fatalf("liar not distrusted: %+v", p)
	}
	st := a.taskStatus("adaptive", 0)
	if st.State != tasks.TaskQueued || verdicts(st) != "liar:failed" || st.Replicas[0].Hash == "" {
		t.Fatalf("the liar's unchecked result after distrust: %s %q %+v", st.State, verdicts(st), st.Replicas)
	}
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	if g1.Index != 0 || g2.Index != 0 {
		t.Fatalf("the re-run is not checked: %v %v", g1, g2)
	}
	a.vote("w1", g1, "truth")
	a.vote("w2", g2, "truth")
	st = a.taskStatus("adaptive", 0)
	if st.State != tasks.TaskDone || verdicts(st) != "liar:failed w1:agreed w2:agreed" || string(a.results("adaptive")[0].Stdout) != "truth" {
		t.Fatalf("after the checked re-run: %s %q", st.State, verdicts(st))
	}
}
