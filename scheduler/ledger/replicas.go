package ledger

import (
	"fmt"
	"slices"
	"strings"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// Replicas and a quorum (issue 14). A task of a job that asks for
// replicas (tasks.JobSpec.Replicated) runs on several workers at once, and
// each successful report is a vote: tasks.ResultHash of its exit code and
// stdout, computed here in Apply from the committed bytes (a pure function
// of the command, so no one, not even the leader, can stamp a wrong one).
// The task is done when Quorum votes agree.
//
// Cost: the per-replica state hangs off task.Rep, nil for every task of a
// job without replicas, so such a job pays 8 bytes a task and its tasks
// take exactly the paths they took before replicas existed. A replicated
// task gets its replicaSet at its first lease.
//
// Leases: a lease is (job, index, attempt); every replica lease gets the
// task's next attempt number, so concurrent replicas are told apart by it
// and the lease index holds one entry per running replica. A replicated task is
// leased (counted in nLeased) while any replica runs, else queued, until
// it is done or failed. It sits in the job's requeued list (once, flagged
// by replicaSet.Queued) while it wants another replica; a task not leased
// yet is in the fresh range instead.
//
// How many replicas: the task wants max(R, votes + Quorum - best) replicas
// counting votes and running ones (best: the most votes any one hash has),
// capped at MaxReplicas votes. So it starts R at once, and a disagreement
// that leaves no hash able to reach the quorum with the replicas running
// schedules one more. When even MaxReplicas votes cannot reach the quorum,
// the task fails as tasks.ErrNoQuorum, its Error naming each hash and the
// workers that gave it (nobody is blamed: no hash won).
//
// Failed attempts (a trap, a timeout, an expired lease) are no vote. They
// are counted per task (replicaSet.Fails) against the job's retries, as an
// R=1 task counts its attempts: the task fails when Fails > retries. A
// release (a draining worker) counts nothing and drops the replica.
//
// When the quorum is reached, running replicas are dropped (their leases
// end; a late report is ignored), the agreed result (stdout, stderr,
// engine, run time of the first agreeing vote) becomes the task's, and the
// other votes keep only their hash, worker and exit code as evidence.
//
// Placement (leaseable): a worker takes at most one replica of a task,
// never one of a task it already voted on, and avoids a task whose replica
// failed on it while another live worker exists. A worker never takes a
// replica while another replica from the same join credential runs or
// voted, as long as a live, trusted worker of a credential none of the
// task's replicas has exists: ten workers of one volunteer cannot outvote
// the grid while other volunteers are there to vote, and a grid of fewer
// credentials than R (a dev grid of one) doubles up rather than stall.
type replicaSet struct {
	// The plan: 0 once the task is decided (see finishReplicated).
	Quorum   int `json:"q,omitempty"`
	Replicas int `json:"n,omitempty"` // replicas to run at once (R)
	Max      int `json:"m,omitempty"` // most votes (max_replicas)
	// Fails counts the failed attempts (no vote), against retries.
	Fails int `json:"f,omitempty"`
	// Queued says the task's index is in its job's requeued list.
	Queued bool      `json:"u,omitempty"`
	Reps   []replica `json:"p,omitempty"`
	// gen is the snapshot generation this set was copied in (see mutRep).
	gen uint64
}

// replica is one lease of a task and its outcome.
type replica struct {
	Worker  string  `json:"w"`
	Cred    string  `json:"c,omitempty"` // the worker's join credential when leased
	Attempt int     `json:"a"`
	Verdict verdict `json:"v"`
	Expiry  int64   `json:"x,omitempty"`
	// A vote: its hash and exit code, and its run time for credit.
	Hash     string `json:"h,omitempty"`
	ExitCode *int   `json:"e,omitempty"`
	Duration int64  `json:"d,omitempty"`
	// The result of the first vote of each hash, kept until the task is
	// decided: the agreed one becomes the task's, the others are dropped.
	Stdout    []byte `json:"o,omitempty"`
	Stderr    []byte `json:"r,omitempty"`
	StdoutRef string `json:"b,omitempty"`
	Engine    string `json:"g,omitempty"`
	// Kept says this vote holds its hash's result (the fields above).
	Kept bool `json:"k,omitempty"`
}

// drop forgets the result a vote kept.
func (l *Ledger) dropKept(j *job, r *replica) {
	if r.Kept {
		l.ref(j, r.StdoutRef, -1)
	}
	r.Stdout, r.Stderr, r.StdoutRef, r.Engine, r.Kept = nil, nil, "", "", false
}

// verdict is a replica's api.Verdict*, one letter in the ledger: a
// replicated task's record is kept small (see finishReplicated).
type verdict string

const (
	vRunning  verdict = "r"
	vPending  verdict = "p"
	vAgreed   verdict = "a"
	vOutvoted verdict = "o"
	vFailed   verdict = "f"
	vExpired  verdict = "x"
)

var verdictNames = map[verdict]string{
	vRunning: api.VerdictRunning, vPending: api.VerdictPending, vAgreed: api.VerdictAgreed,
	vOutvoted: api.VerdictOutvoted, vFailed: api.VerdictFailed, vExpired: api.VerdictExpired,
}

func (r *replica) voted() bool {
	switch r.Verdict {
	case vPending, vAgreed, vOutvoted:
		return true
	}
	return false
}

// find is the replica of attempt, or nil.
func (rs *replicaSet) find(attempt int) *replica {
	for i := range rs.Reps {
		if rs.Reps[i].Attempt == attempt {
			return &rs.Reps[i]
		}
	}
	return nil
}

// running is the replica of attempt while its lease runs; nil for an
// attempt with no replica or one that has reported, expired or failed.
func (rs *replicaSet) running(attempt int) *replica {
	if r := rs.find(attempt); r != nil && r.Verdict == vRunning {
		return r
	}
	return nil
}

// tally counts the pending votes and running replicas, and the hash with
// the most votes (the first to reach that count, in replica order).
func (rs *replicaSet) tally() (votes, running, best int, bestHash string) {
	for i, r := range rs.Reps {
		switch r.Verdict {
		case vRunning:
			running++
		case vPending:
			votes++
			if n := rs.votesFor(r.Hash, i); n > best {
				best, bestHash = n, r.Hash
			}
		}
	}
	return votes, running, best, bestHash
}

// votesFor counts the pending votes of hash among the first upto+1
// replicas (a few dozen at most: no map to allocate).
func (rs *replicaSet) votesFor(hash string, upto int) int {
	n := 0
	for _, r := range rs.Reps[:upto+1] {
		if r.Verdict == vPending && r.Hash == hash {
			n++
		}
	}
	return n
}

// open is how many more replicas the task wants leased now.
func (rs *replicaSet) open(votes, running, best int) int {
	want := min(rs.Max, max(rs.Replicas, votes+rs.Quorum-best))
	return max(0, want-votes-running)
}

// mutRep is t's replica set for Apply to change: copied first if a
// snapshot may share it (t, from taskTable.mut, shares the pointer with the
// chunk a snapshot holds).
func (l *Ledger) mutRep(t *task) *replicaSet {
	if t.Rep.gen != l.gen {
		c := *t.Rep
		c.Reps = slices.Clone(t.Rep.Reps)
		c.gen = l.gen
		t.Rep = &c
	}
	return t.Rep
}

// newReplicaSet is the plan of a task of j at its first lease, to worker
// whose record has streak: an adaptive job checks it (two replicas,
// quorum two) when adaptiveCheck says so, else takes one result.
func (l *Ledger) newReplicaSet(j *job, idx int, streak int, draw uint64) *replicaSet {
	r, q, m := j.Spec.Replication()
	if j.Spec.Adaptive && !adaptiveCheck(streak, draw, idx) {
		r, q, m = 1, 1, 1
	}
	return &replicaSet{Quorum: q, Replicas: r, Max: m, gen: l.gen}
}

// adaptiveCheck decides whether an adaptive task first leased to a worker
// with this streak (results agreed since its last outvoted one) is checked
// by a second replica: always at streak 0, else with probability
// max(0.05, 10/(10+streak)), drawn from the leader's random draw and the
// task's index (so every server decides the same).
func adaptiveCheck(streak int, draw uint64, idx int) bool {
	if streak <= 0 {
		return true
	}
	d := uint64(min(10+streak, 200)) // 10/200 = the 5% floor
	return splitmix64(draw+uint64(idx))%d < 10
}

// splitmix64 is Steele, Lea and Flood's 64-bit mixer: a different draw
// per task from one draw per command.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// placement is what a lease command decides about its worker once, the
// first time it meets a replicated job.
type placement struct {
	worker       string
	cred         string
	avoidRepeats bool
	// liveCreds are the join credentials of the other live, trusted
	// workers: the credential rule holds for a task while one of them is
	// not among its replicas' credentials.
	liveCreds map[string]bool
	streak    int
	// from is, per job, where popReplica resumes its scan of the requeued
	// list within this command: the entries before it are tasks this
	// worker may not take, and stay so while the command applies (a pop
	// removes only the entry it takes; settle appends only tasks this
	// worker now runs). So a command scans each list once.
	from map[*job]int
}

func (l *Ledger) placementFor(c *LeaseTasksCommand, avoidRepeats bool) *placement {
	pl := &placement{worker: c.Worker, cred: l.credKey(c.Worker), avoidRepeats: avoidRepeats}
	if p := l.peers[c.Worker]; p != nil {
		pl.streak = p.Streak
	}
	pl.liveCreds = map[string]bool{}
	for id, p := range l.peers {
		if id != c.Worker && p.IsAliveWorker() && !p.Distrusted {
			pl.liveCreds[l.credKey(id)] = true
		}
	}
	return pl
}

// credKey is the join credential a worker was admitted with; a worker
// admitted without one (a grid without credentials) counts as its own.
func (l *Ledger) credKey(worker string) string {
	if cr := l.creds[l.joinedBy[worker]]; cr != nil {
		return cr.Issuer
	}
	return "peer:" + worker
}

// mayTake reports whether the placement's worker may take another replica
// of the task with set rs (see replicaSet's placement rules).
func (pl *placement) mayTake(rs *replicaSet) bool {
	sameCred := false
	for _, r := range rs.Reps {
		if r.Worker == pl.worker && (r.Verdict == vRunning || r.voted() || pl.avoidRepeats) {
			return false
		}
		sameCred = sameCred || r.Cred == pl.cred && (r.Verdict == vRunning || r.voted())
	}
	return !sameCred || !pl.newCredFor(rs)
}

// newCredFor reports whether a live, trusted worker of a credential none
// of the task's running or voting replicas has exists: then the task
// waits for it rather than take a second replica of one credential.
func (pl *placement) newCredFor(rs *replicaSet) bool {
	for c := range pl.liveCreds {
		if !slices.ContainsFunc(rs.Reps, func(r replica) bool { return r.Cred == c && (r.Verdict == vRunning || r.voted()) }) {
			return true
		}
	}
	return false
}

// popReplica takes the oldest requeued task the worker may take a replica
// of, else the next never-leased one still queued.
func (j *job) popReplica(pl *placement) (int, bool) {
	if pl.from == nil {
		pl.from = map[*job]int{}
	}
	for k := pl.from[j]; k < len(j.requeued); k++ {
		idx := j.requeued[k]
		if rs := j.Tasks.at(idx).Rep; rs != nil && !pl.mayTake(rs) {
			continue
		}
		j.requeued = slices.Delete(j.requeued, k, k+1)
		pl.from[j] = k
		return idx, true
	}
	pl.from[j] = len(j.requeued)
	for j.fresh < j.Tasks.len() {
		j.fresh++
		if j.Tasks.at(j.fresh-1).state() == tasks.TaskQueued {
			return j.fresh - 1, true
		}
	}
	return 0, false
}

// leaseReplica grants one replica of a task of j to the placement's
// worker, if j has one it may take.
func (l *Ledger) leaseReplica(j *job, c *LeaseTasksCommand, pl *placement) (Grant, bool) {
	idx, ok := j.popReplica(pl)
	if !ok {
		return Grant{}, false
	}
	t := j.Tasks.mut(idx)
	if t.Rep == nil {
		t.Rep = l.newReplicaSet(j, idx, pl.streak, c.Draw)
	}
	rs := l.mutRep(t)
	rs.Queued = false // popped
	t.addAttempt(+1)
	expiry := leaseExpiry(c.Now, j.Spec.Timeout, c.Slack)
	rs.Reps = append(rs.Reps, replica{Worker: c.Worker, Cred: pl.cred, Attempt: t.attemptCount(), Verdict: vRunning, Expiry: expiry})
	l.holdLease(leaseKey(j, idx, t.attemptCount()), c.Worker)
	j.keepSeed(idx) // for the assignment the leader builds next
	l.settle(j, idx, c.Now)
	return Grant{Job: j.ID, Index: idx, Attempt: t.attemptCount(), Expiry: expiry}, true
}

// settle brings a replicated task's state, counters and queue place in
// line with its replicas after any change: done at a quorum, failed when
// no quorum can be reached or retries are spent, else leased or queued,
// in the queue while it wants another replica.
func (l *Ledger) settle(j *job, idx int, now int64) {
	t := j.Tasks.mut(idx)
	rs := l.mutRep(t)
	votes, running, best, bestHash := rs.tally()
	switch {
	case best >= rs.Quorum:
		l.decide(j, idx, bestHash, now)
	case best+rs.Max-votes < rs.Quorum:
		t.setError(tasks.ErrNoQuorum, noQuorumError(rs, votes))
		l.finishReplicated(j, idx, tasks.TaskFailed, now)
	case rs.Fails > j.Spec.Retries:
		l.finishReplicated(j, idx, tasks.TaskFailed, now)
	default:
		state := tasks.TaskQueued
		if running > 0 {
			state = tasks.TaskLeased
		}
		j.move(t, state)
		j.queueReplica(idx, rs, rs.open(votes, running, best) > 0)
	}
}

// move changes a task's state, keeping the job's counters.
func (j *job) move(t *task, state tasks.TaskState) {
	j.count(t.state(), -1)
	t.setState(state)
	j.count(state, +1)
}

// queueReplica puts the task in the queue or takes it out.
func (j *job) queueReplica(idx int, rs *replicaSet, want bool) {
	switch {
	case want && !rs.Queued:
		j.requeued = append(j.requeued, idx)
	case !want && rs.Queued && !j.Cancelled: // a cancel empties the queue at once
		if k := slices.Index(j.requeued, idx); k >= 0 {
			j.requeued = slices.Delete(j.requeued, k, k+1)
		}
	}
	rs.Queued = want
}

// finishReplicated ends a replicated task as done or failed: running
// replicas are dropped (their leases end), the votes' kept results are
// dropped (the caller moved the agreed one to the task first).
func (l *Ledger) finishReplicated(j *job, idx int, state tasks.TaskState, now int64) {
	t := j.Tasks.mut(idx)
	rs := l.mutRep(t)
	j.queueReplica(idx, rs, false)
	kept := rs.Reps[:0]
	for _, r := range rs.Reps {
		if r.Verdict == vRunning {
			l.dropLease(leaseKey(j, idx, r.Attempt), r.Worker)
			continue
		}
		l.dropKept(j, &r)
		kept = append(kept, r.evidence())
	}
	rs.Reps = kept
	// The plan is spent (reopen makes it again): a decided task keeps only
	// its replicas' evidence, about 70 bytes in a snapshot for two
	// agreeing replicas.
	rs.Quorum, rs.Replicas, rs.Max, rs.Fails = 0, 0, 0, 0
	j.move(t, state)
	if state == tasks.TaskDone {
		l.cache.add(j, idx)
	}
	j.maybeFinish(now)
}

// evidence is what a decided task keeps of a replica: its worker, attempt
// and verdict, and for a vote that did not agree, its hash and exit code
// (an agreeing vote's are the task's result's, see task.outcomes).
func (r replica) evidence() replica {
	e := replica{Worker: r.Worker, Attempt: r.Attempt, Verdict: r.Verdict}
	if r.Verdict != vAgreed {
		e.Hash, e.ExitCode = r.Hash, r.ExitCode
	}
	return e
}

// decide makes hash the task's result: its votes agreed, the others
// outvoted, the first agreeing vote's result the task's, and the workers'
// records updated.
func (l *Ledger) decide(j *job, idx int, hash string, now int64) {
	t := j.Tasks.mut(idx)
	rs := l.mutRep(t)
	var agreed, outvoted []replica // copies: finishReplicated reorders rs.Reps
	for i := range rs.Reps {
		r := &rs.Reps[i]
		if r.Verdict != vPending {
			continue
		}
		if r.Hash == hash {
			r.Verdict = vAgreed
			agreed = append(agreed, *r)
		} else {
			r.Verdict = vOutvoted
			outvoted = append(outvoted, *r)
		}
	}
	for _, r := range agreed {
		if r.Kept {
			t.Worker, t.Duration = r.Worker, r.Duration
			t.setExitCodePtr(r.ExitCode)
			j.Tasks.setOutput(idx, r.Stdout, r.Stderr, r.StdoutRef, r.Engine)
			l.ref(j, r.StdoutRef, +1) // the task's own reference; finishReplicated drops the vote's
			break
		}
	}
	t.setError("", "")
	checked := rs.Quorum > 1
	l.finishReplicated(j, idx, tasks.TaskDone, now)
	l.judge(agreed, outvoted, checked, now)
}

// judge updates the workers' records once a task is decided: every
// agreeing worker is credited its run (Done, CPU); in a checked task
// (quorum > 1) it also gains Agreed and Streak, and every outvoted worker
// gains Outvoted and a strike and loses its streak. An unchecked result
// (quorum 1: an adaptive task not sampled) proves nothing of its worker's
// record, so it moves none of it.
func (l *Ledger) judge(agreed, outvoted []replica, checked bool, now int64) {
	for _, r := range agreed {
		p := l.peers[r.Worker]
		if p == nil {
			continue
		}
		p.Done++
		p.CPUNanos += max(r.Duration, 0)
		if checked {
			p.Agreed++
			p.Streak++
		}
	}
	for _, r := range outvoted {
		if p := l.peers[r.Worker]; p != nil {
			p.Outvoted++
			p.Strikes++
			p.Streak = 0
			if !p.Distrusted && p.untrustworthy() {
				l.distrust(p, now)
			}
		}
	}
}

// Distrust: a worker is distrusted once it has at least minStrikes
// outvoted results since an operator last trusted it and they are more
// than 1/strikeShare (5%) of all its checked results. A single wrong
// result of a flaky machine is not enough; a liar's few are.
const (
	minStrikes  = 3
	strikeShare = 20
)

func (p *Peer) untrustworthy() bool {
	return p.Strikes >= minStrikes && p.Strikes*strikeShare > p.Agreed+p.Outvoted
}

// noQuorumError lists each hash voted with the workers that gave it.
func noQuorumError(rs *replicaSet, votes int) string {
	var order []string
	by := map[string][]string{}
	for _, r := range rs.Reps {
		if r.Verdict == vPending {
			if _, ok := by[r.Hash]; !ok {
				order = append(order, r.Hash)
			}
			by[r.Hash] = append(by[r.Hash], r.Worker)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no quorum after %d replicas (need %d agreeing):", votes, rs.Quorum)
	for _, h := range order {
		fmt.Fprintf(&b, " %s…(%s)", h[:min(len(h), 16)], strings.Join(by[h], ", "))
	}
	return b.String()
}

// completeReplica records a report of a replica. accepted says whether it
// is (or repeats) the replica's outcome.
func (l *Ledger) completeReplica(j *job, worker string, now int64, rep *api.Report) bool {
	if t := j.Tasks.at(rep.Index); t.Rep != nil {
		if r := t.Rep.find(rep.Attempt); r != nil && r.Worker == worker {
			if r.Verdict == vRunning {
				l.recordReplica(j, worker, now, rep)
				return true
			}
			if repeatsReplica(r, rep) {
				return true // a resent report
			}
		}
	}
	j.Tasks.mut(rep.Index).addLate()
	return false
}

// repeatsReplica reports whether rep is the outcome replica r already has.
func repeatsReplica(r *replica, rep *api.Report) bool {
	if rep.ErrorKind == "" {
		return r.voted() || r.Verdict == vFailed && r.Hash != "" // discarded when its worker was distrusted
	}
	return r.Verdict == vFailed && r.Hash == ""
}

func (l *Ledger) recordReplica(j *job, worker string, now int64, rep *api.Report) {
	t := j.Tasks.mut(rep.Index)
	rs := l.mutRep(t)
	r := rs.find(rep.Attempt)
	l.dropLease(leaseKey(j, rep.Index, rep.Attempt), r.Worker)
	r.Expiry = 0
	if rep.ErrorKind != "" {
		r.Verdict = vFailed
		rs.Fails++
		t.setError(rep.ErrorKind, rep.Error)
		t.setFailedOn(worker)
		if p := l.peers[worker]; p != nil {
			p.Failed++
		}
		l.settle(j, rep.Index, now)
		return
	}
	code := rep.ExitCode
	r.Verdict, r.Hash, r.ExitCode, r.Duration = vPending, tasks.ResultHash(code, rep.StdoutSum()), exitCode(code), int64(rep.Duration)
	if !hashKept(rs, r) {
		r.Stdout, r.Stderr, r.StdoutRef, r.Engine, r.Kept = rep.Stdout, rep.Stderr, rep.StdoutBlob, rep.Engine, true
		l.ref(j, r.StdoutRef, +1)
	}
	l.settle(j, rep.Index, now)
}

// hashKept reports whether another vote of r's hash holds its result.
func hashKept(rs *replicaSet, r *replica) bool {
	for i := range rs.Reps {
		o := &rs.Reps[i]
		if o != r && o.voted() && o.Hash == r.Hash && o.Kept {
			return true
		}
	}
	return false
}

// expireReplica counts an expired replica lease as a failed attempt.
func (l *Ledger) expireReplica(j *job, ref api.TaskRef, reason string, now int64) bool {
	t := j.Tasks.at(ref.Index)
	if t.Rep == nil {
		return false
	}
	if t.Rep.running(ref.Attempt) == nil {
		return false
	}
	t = j.Tasks.mut(ref.Index)
	rs := l.mutRep(t)
	r := rs.find(ref.Attempt)
	l.dropLease(leaseKey(j, ref.Index, ref.Attempt), r.Worker)
	r.Verdict, r.Expiry = vExpired, 0
	rs.Fails++
	t.setFailedOn(r.Worker)
	t.setError("lease_expired", fmt.Sprintf("lease expired: %s", reason))
	l.settle(j, ref.Index, now)
	return true
}

// releaseReplica drops a replica its worker handed back unrun: it counts
// nothing, and the task wants another replica in its place.
func (l *Ledger) releaseReplica(j *job, worker string, ref api.TaskRef, now int64) bool {
	t := j.Tasks.at(ref.Index)
	if t.Rep == nil {
		return false
	}
	if r := t.Rep.running(ref.Attempt); r == nil || r.Worker != worker {
		return false
	}
	t = j.Tasks.mut(ref.Index)
	rs := l.mutRep(t)
	l.dropLease(leaseKey(j, ref.Index, ref.Attempt), worker)
	rs.Reps = slices.DeleteFunc(rs.Reps, func(r replica) bool { return r.Attempt == ref.Attempt })
	l.settle(j, ref.Index, now)
	return true
}

// renewReplica pushes back a replica lease's expiry (never forward).
func (l *Ledger) renewReplica(j *job, worker string, ref api.TaskRef, expiry int64) bool {
	t := j.Tasks.at(ref.Index)
	if t.Rep == nil {
		return false
	}
	if r := t.Rep.running(ref.Attempt); r == nil || r.Worker != worker || expiry <= r.Expiry {
		return false
	}
	r := l.mutRep(j.Tasks.mut(ref.Index)).find(ref.Attempt)
	r.Expiry = expiry
	return true
}

// cancelReplicated fails an unfinished replicated task as cancelled.
func (l *Ledger) cancelReplicated(j *job, idx int, now int64) {
	t := j.Tasks.mut(idx)
	t.setError("cancelled", "job cancelled")
	if t.Rep == nil { // never leased
		j.move(t, tasks.TaskFailed)
		return
	}
	l.finishReplicated(j, idx, tasks.TaskFailed, now)
}

// outcomes is the task's replicas as the API shows them; an agreeing
// vote's hash and exit code are the task's result's (stdout its inline
// stdout).
func (t *task) outcomes(stdout []byte) []api.ReplicaOutcome {
	out := make([]api.ReplicaOutcome, 0, len(t.Rep.Reps))
	for _, r := range t.Rep.Reps {
		o := api.ReplicaOutcome{Worker: r.Worker, Attempt: r.Attempt, Hash: r.Hash, ExitCode: r.ExitCode, Verdict: verdictNames[r.Verdict]}
		if r.Verdict == vAgreed && r.Hash == "" {
			o.Hash, o.ExitCode = t.resultHash(stdout), t.exitCodePtr()
		}
		out = append(out, o)
	}
	return out
}

// resultHash is the vote a done task's result stands for (stdout its
// inline stdout).
func (t *task) resultHash(stdout []byte) string {
	code, ok := t.exitCode()
	if !ok {
		return ""
	}
	r := tasks.Result{Stdout: stdout, StdoutBlob: t.stdoutRef()}
	return tasks.ResultHash(code, r.StdoutSum())
}

// clearResult forgets the result of done task idx of j (reopen).
func (l *Ledger) clearResult(j *job, idx int) {
	t := j.Tasks.mut(idx)
	l.ref(j, t.stdoutRef(), -1)
	j.Tasks.setOutput(idx, nil, nil, "", "")
	t.clearExitCode()
	t.Duration = 0
}

// agreedCount is how many agreeing results a done task's result had.
func (t *task) agreedCount() int {
	switch {
	case t.cached() != nil:
		return t.cached().Agreed
	case t.Rep != nil:
		n := 0
		for _, r := range t.Rep.Reps {
			if r.Verdict == vAgreed {
				n++
			}
		}
		return n
	}
	return 1
}

// distrust stops leasing to a worker: its leases are handed back (as a
// release: they cost their tasks nothing) and its results that no quorum
// checked, in jobs not finished, are run again (see reopen).
func (l *Ledger) distrust(p *Peer, now int64) {
	p.Distrusted = true
	for _, ref := range l.LeasesOf(p.ID) {
		l.releaseOne(p.ID, ref, now)
	}
	for _, j := range l.order {
		if j.FinishedAt != 0 || j.Cancelled {
			continue
		}
		for i := 0; i < j.Tasks.len(); i++ {
			if t := j.Tasks.at(i); t.state() == tasks.TaskDone && t.cached() == nil && t.Worker == p.ID && t.agreedCount() == 1 {
				l.reopen(j, i, now)
			}
		}
	}
}

// reopen queues a done task whose result only its (now distrusted) worker
// vouched for. A task of a job without replicas is queued as after a
// failed attempt on that worker; a replicated one discards the vote
// (verdict failed, its hash kept as evidence) and, in an adaptive job,
// becomes a checked task.
func (l *Ledger) reopen(j *job, idx int, now int64) {
	l.cache.removeTask(j.taskKeyOf(idx), j, idx)
	t := j.Tasks.mut(idx)
	worker := t.Worker
	if t.Rep == nil {
		l.clearResult(j, idx)
		j.nDone--
		t.setFailedOn(worker)
		l.requeue(j, idx)
		return
	}
	rs := l.mutRep(t)
	hash := t.resultHash(j.Tasks.stdout(idx)) // before the result is cleared
	for i := range rs.Reps {
		if r := &rs.Reps[i]; r.Worker == worker && r.Verdict == vAgreed {
			r.Verdict, r.Hash = vFailed, hash // evidence of the discarded vote
		}
	}
	// The plan again (finishReplicated dropped it); an adaptive task is
	// now checked.
	rs.Replicas, rs.Quorum, rs.Max = j.Spec.Replication()
	l.clearResult(j, idx)
	t.Worker = ""
	l.settle(j, idx, now)
}

// applyTrustPeer clears a distrusted worker (see TrustPeerCommand).
func (l *Ledger) applyTrustPeer(c *TrustPeerCommand) any {
	p := l.peers[c.ID]
	if p == nil {
		return fmt.Errorf("%w: %s", ErrUnknownWorker, c.ID)
	}
	p.Distrusted, p.Strikes, p.Streak = false, 0, 0
	return nil
}

// keptRefs are the result blobs the task's votes keep (refs.go counts them).
func (t *task) keptRefs() []string {
	if t.Rep == nil {
		return nil
	}
	var out []string
	for _, r := range t.Rep.Reps {
		if r.Kept && r.StdoutRef != "" {
			out = append(out, r.StdoutRef)
		}
	}
	return out
}

// HasWorkFor reports whether a LeaseTasksCommand of worker (with engines)
// would grant anything now: the leader asks before it proposes one, so a
// worker that may take none of the queued tasks (every requeued replica
// wants another worker, every failed task another machine) long-polls
// without committing empty leases, each of which would wake it again.
// A read-only dry run of applyLeaseTasks's choices.
func (l *Ledger) HasWorkFor(worker string, engines []string) bool {
	if p := l.peers[worker]; p != nil && p.Distrusted {
		return false
	}
	avoidRepeats := l.otherWorkerAlive(worker)
	var pl *placement
	for _, j := range l.order {
		if !j.hasQueued() || j.Cancelled {
			continue
		}
		if need := j.Spec.NeedsEngine(); need != "" && !slices.Contains(engines, need) {
			continue
		}
		if j.Spec.Replicated() && pl == nil {
			pl = l.placementFor(&LeaseTasksCommand{Worker: worker}, avoidRepeats)
		}
		if j.mayPop(worker, avoidRepeats, pl) {
			return true
		}
	}
	return false
}

// mayPop reports whether popQueued (or popReplica, for a job with
// replicas) would give the worker a task, changing nothing.
func (j *job) mayPop(worker string, avoidRepeats bool, pl *placement) bool {
	for _, idx := range j.requeued {
		t := j.Tasks.at(idx)
		switch {
		case j.Spec.Replicated() && (t.Rep == nil || pl.mayTake(t.Rep)):
			return true
		case !j.Spec.Replicated() && !(avoidRepeats && t.failedOn() == worker):
			return true
		}
	}
	for i := j.fresh; i < j.Tasks.len(); i++ {
		if j.Tasks.at(i).state() == tasks.TaskQueued {
			return true
		}
	}
	return false
}
