package ledger

import (
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// The read side of the ledger: what the server's handlers and loops and the
// views (dashboard, metrics) ask of it. Every method here is called under
// FSM.View and changes nothing. Results share no mutable state with the
// ledger: they are copies, or values Apply never changes in place (a
// job's spec, manifests, blob and output bytes).

// JobSummaries lists every job's summary in submission order.
func (l *Ledger) JobSummaries() []api.JobSummary {
	out := make([]api.JobSummary, 0, len(l.order))
	for _, j := range l.order {
		out = append(out, j.summary())
	}
	return out
}

// NewestJobSummaries lists at most n job summaries, newest first.
func (l *Ledger) NewestJobSummaries(n int) []api.JobSummary {
	var out []api.JobSummary
	for i := len(l.order) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, l.order[i].summary())
	}
	return out
}

// JobCount is the number of jobs in the ledger.
func (l *Ledger) JobCount() int { return len(l.order) }

// JobSummary is one job's summary.
func (l *Ledger) JobSummary(id string) (api.JobSummary, bool) {
	j := l.jobs[id]
	if j == nil {
		return api.JobSummary{}, false
	}
	return j.summary(), true
}

// JobStatus is a job with its spec and every task's state.
func (l *Ledger) JobStatus(id string) (*api.JobStatus, bool) {
	j := l.jobs[id]
	if j == nil {
		return nil, false
	}
	st := &api.JobStatus{JobSummary: j.summary(), Spec: j.Spec, TaskStats: make([]api.TaskStatus, j.Tasks.len()), GridEngine: l.gridEngine(j)}
	for i := range st.TaskStats {
		st.TaskStats[i] = j.Tasks.status(i)
	}
	return st, true
}

// JobSpec is a job's spec. Apply never changes a spec, but its maps and
// slices are the ledger's: callers must not change them.
func (l *Ledger) JobSpec(id string) (*tasks.JobSpec, bool) {
	j := l.jobs[id]
	if j == nil {
		return nil, false
	}
	return &j.Spec, true
}

// Results is a page of a job's results from offset: at most limit tasks,
// and past the first, at most maxBytes of inline output.
func (l *Ledger) Results(id string, offset, limit, maxBytes int) (*api.ResultsPage, bool) {
	j := l.jobs[id]
	if j == nil {
		return nil, false
	}
	page := &api.ResultsPage{Offset: offset, Total: j.Tasks.len(), Results: []api.TaskResult{}}
	size := 0
	for i := offset; i < j.Tasks.len() && len(page.Results) < limit && (size < maxBytes || len(page.Results) == 0); i++ {
		r := j.Tasks.result(i)
		page.Results = append(page.Results, r)
		size += len(r.Stdout) + len(r.Stderr)
	}
	return page, true
}

// TaskResults are tasks [from, to) of a job with their outputs (clamped to
// the job's tasks).
func (l *Ledger) TaskResults(id string, from, to int) []api.TaskResult {
	j := l.jobs[id]
	if j == nil {
		return nil
	}
	var out []api.TaskResult
	for i := max(from, 0); i < min(to, j.Tasks.len()); i++ {
		out = append(out, j.Tasks.result(i))
	}
	return out
}

// Assignment expands a grant into everything a worker needs to run it.
func (l *Ledger) Assignment(g Grant) api.Assignment {
	j := l.jobs[g.Job]
	a := api.Assignment{
		Job: g.Job, Index: g.Index, Attempt: g.Attempt, ModuleHash: j.Spec.ModuleHash, Name: j.Spec.Name,
		Args: j.Spec.TaskArgs(g.Index), Env: j.Spec.Env, Seed: j.contentSeed(g.Index),
		Timeout: j.Spec.Timeout, Memory: j.Spec.Memory, MaxOutput: j.Spec.MaxOutput, Engine: j.Spec.Engine, GridEngine: l.gridEngine(j),
		K: j.Spec.DataShards, M: j.Spec.ParityShards,
		Expiry: time.Unix(0, g.Expiry).UTC(),
	}
	if g.Index < len(j.Spec.Inputs) {
		in := j.Spec.Inputs[g.Index].Hash
		if data, ok := l.blobs[in]; ok {
			a.Stdin = data
		} else {
			a.InputHash = in
		}
	}
	return a
}

// HoldsLease reports whether worker holds the lease of ref's attempt now.
func (l *Ledger) HoldsLease(worker string, ref api.TaskRef) bool {
	t := l.peekTask(ref.Job, ref.Index)
	if t != nil && t.Rep != nil {
		r := t.Rep.running(ref.Attempt)
		return r != nil && r.Worker == worker
	}
	return t != nil && t.state() == tasks.TaskLeased && t.attemptCount() == ref.Attempt && t.Worker == worker
}

// LeaseExpiry is when ref's lease expires and its task's timeout (the
// lease was granted timeout plus the leader's slack before expiry).
func (l *Ledger) LeaseExpiry(ref api.TaskRef) (expiry int64, timeout time.Duration, ok bool) {
	j := l.jobs[ref.Job]
	t := l.peekTask(ref.Job, ref.Index)
	if t != nil && t.Rep != nil {
		if r := t.Rep.running(ref.Attempt); r != nil {
			return r.Expiry, j.Spec.Timeout, true
		}
		return 0, 0, false
	}
	if t == nil || t.state() != tasks.TaskLeased || t.attemptCount() != ref.Attempt {
		return 0, 0, false
	}
	return t.Expiry, j.Spec.Timeout, true
}

// Distrusted reports whether a worker is distrusted (leased nothing).
func (l *Ledger) Distrusted(worker string) bool {
	p := l.peers[worker]
	return p != nil && p.Distrusted
}

// Peer is a copy of one peer's record.
func (l *Ledger) Peer(id string) (Peer, bool) {
	p := l.peers[id]
	if p == nil {
		return Peer{}, false
	}
	return *p, true
}

// PeerInView is peer id's record itself (nil if unknown), for a reader
// inside FSM.View that compares a few fields and keeps nothing: it must
// not change it or use it after View returns.
func (l *Ledger) PeerInView(id string) *Peer { return l.peers[id] }

// PeerResults is the results every peer has had accepted or failed (the
// sum of their Done and Failed), counted in place: the dashboard's sampler
// asks every second, and copying and sorting 10,000 peers' records for it
// was a visible share of a leader's CPU (and of its garbage).
func (l *Ledger) PeerResults() int {
	n := 0
	for _, p := range l.peers {
		n += p.Done + p.Failed
	}
	return n
}

// Peers lists copies of every peer's record, sorted by id.
func (l *Ledger) Peers() []Peer {
	out := make([]Peer, 0, len(l.peers))
	for _, id := range sortedKeys(l.peers) {
		out = append(out, *l.peers[id])
	}
	return out
}

// HeartbeatingPeers is the ids, in no order, of the peers not down that
// should heartbeat (workers and storage peers; a plain server does not).
// The leader's liveness loop asks for it every tick: copying and sorting
// every peer's record (Peers) for it was 8% of a leader serving 10,000
// heartbeating workers.
func (l *Ledger) HeartbeatingPeers() []string {
	out := make([]string, 0, len(l.peers))
	for id, p := range l.peers {
		if p.State != api.PeerDown && p.Heartbeats() {
			out = append(out, id)
		}
	}
	return out
}

// InlineBlob is a blob kept inline in the ledger.
func (l *Ledger) InlineBlob(hash string) ([]byte, bool) {
	data, ok := l.blobs[hash]
	return data, ok
}

// Manifest is an erasure-coded blob's manifest (nil for none). A manifest
// is replaced, never changed in place: it may be read after View returns.
func (l *Ledger) Manifest(hash string) *storage.Manifest { return l.manifests[hash] }

// BlobMeta is a blob's garbage-collection state (zero if unknown).
func (l *Ledger) BlobMeta(hash string) BlobMeta { return l.meta[hash] }

// BlobRefs counts the jobs' references to a blob.
func (l *Ledger) BlobRefs(hash string) int { return l.refs[hash] }

// PlacedOn reports whether any manifest places the shard on peer.
func (l *Ledger) PlacedOn(shard, peer string) bool { return l.placed.placedOn(shard, peer) }

// UnusedShards are the shards of the deleted manifests (doomed, by blob)
// that no remaining manifest places on the same peer (see shardIndex).
func (l *Ledger) UnusedShards(deleted []string, doomed map[string]*storage.Manifest) []ShardAt {
	var out []ShardAt
	seen := map[ShardAt]bool{}
	for _, h := range deleted {
		m := doomed[h]
		if m == nil {
			continue
		}
		for _, seg := range m.Segments {
			for _, sh := range seg.Shards {
				at := ShardAt{sh.Hash, sh.Peer}
				if sh.Peer != "" && !seen[at] && !l.placed.placedOn(sh.Hash, sh.Peer) {
					seen[at] = true
					out = append(out, at)
				}
			}
		}
	}
	return out
}

// StoragePeers lists storage peers with their addresses, sorted by id;
// liveOnly drops the ones marked down.
func (l *Ledger) StoragePeers(liveOnly bool) []api.StoragePeer {
	out := []api.StoragePeer{}
	for _, id := range sortedKeys(l.peers) {
		p := l.peers[id]
		if !slices.Contains(p.Roles, api.RoleStorage) || p.ShardAddress() == "" || liveOnly && p.State == api.PeerDown {
			continue
		}
		out = append(out, api.StoragePeer{ID: p.ID, Address: p.ShardAddress()})
	}
	return out
}

// GoneAt says whether a peer's shards count as lost at now: it is unknown,
// or has been down for at least grace.
func (l *Ledger) GoneAt(now time.Time, grace time.Duration) func(peer string) bool {
	return func(id string) bool {
		p := l.peers[id]
		return p == nil || p.State == api.PeerDown && now.UnixNano()-p.Since >= grace.Nanoseconds()
	}
}

func (j *job) summary() api.JobSummary {
	s := api.JobSummary{
		ID: j.ID, Name: j.Spec.Name, State: j.state(), Priority: j.Spec.Priority, Tasks: j.Tasks.len(),
		Queued: j.nQueued, Leased: j.nLeased, Done: j.nDone, Failed: j.nFailed,
		SubmittedAt: time.Unix(0, j.SubmittedAt).UTC(),
	}
	if j.FinishedAt != 0 {
		t := time.Unix(0, j.FinishedAt).UTC()
		s.FinishedAt = &t
	}
	return s
}

// status is task idx as the API shows it.
func (tt *taskTable) status(idx int) api.TaskStatus {
	t := tt.at(idx)
	st := api.TaskStatus{
		Index: idx, State: t.state(), Attempts: t.attemptCount(), Worker: t.Worker, ExitCode: t.exitCodePtr(),
		ErrorKind: t.errorKind(), Error: t.errorText(), Duration: time.Duration(t.Duration), Ignored: t.lateCount(), Engine: t.engineName(),
	}
	if c := t.cached(); c != nil {
		st.CachedFrom = &api.CachedFrom{Job: c.Job, Index: c.Index, Agreed: c.Agreed}
	}
	if t.Rep != nil {
		st.Replicas = t.outcomes(tt.stdout(idx))
	}
	return st
}

// result is task idx with its outputs, as the API shows it.
func (tt *taskTable) result(idx int) api.TaskResult {
	t := tt.at(idx)
	return api.TaskResult{TaskStatus: tt.status(idx), Stdout: tt.stdout(idx), Stderr: t.stderr(), StdoutBlob: t.stdoutRef()}
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// OwnsJob reports whether credential owner submitted job id.
func (l *Ledger) OwnsJob(owner, id string) bool {
	j := l.jobs[id]
	return j != nil && j.Owner == owner
}

// JobOwner is the credential that submitted job id.
func (l *Ledger) JobOwner(id string) (string, bool) {
	j := l.jobs[id]
	if j == nil {
		return "", false
	}
	return j.Owner, true
}

// MayRead reports whether credential owner may read a blob: it put the
// blob, or one of its jobs uses it (its module, an input, a result).
func (l *Ledger) MayRead(owner, hash string) bool {
	return slices.Contains(l.meta[hash].Owners, owner) || l.ownerRefs[owner].used(hash)
}

// JobSummariesOf lists owner's jobs' summaries in submission order.
func (l *Ledger) JobSummariesOf(owner string) []api.JobSummary {
	out := []api.JobSummary{}
	for _, j := range l.order {
		if j.Owner == owner {
			out = append(out, j.summary())
		}
	}
	return out
}

// TaskStrip summarises a job's tasks, in task order, in at most cells
// cells of (nearly) equal runs of tasks: each cell's count of queued,
// leased, done and failed tasks. O(tasks), no output copied.
func (l *Ledger) TaskStrip(id string, cells int) [][4]int {
	j := l.jobs[id]
	if j == nil || cells <= 0 {
		return nil
	}
	n := j.Tasks.len()
	cells = min(cells, n)
	out := make([][4]int, cells)
	for i := range n {
		out[i*cells/n][stateSlot(j.Tasks.at(i).state())]++
	}
	return out
}

func stateSlot(s tasks.TaskState) int {
	switch s {
	case tasks.TaskLeased:
		return 1
	case tasks.TaskDone:
		return 2
	case tasks.TaskFailed:
		return 3
	}
	return 0
}

// FailedTasks are the first n failed tasks of a job, in task order, with
// their outputs.
func (l *Ledger) FailedTasks(id string, n int) []api.TaskResult {
	j := l.jobs[id]
	if j == nil {
		return nil
	}
	var out []api.TaskResult
	for i := 0; i < j.Tasks.len() && len(out) < n; i++ {
		if j.Tasks.at(i).state() == tasks.TaskFailed {
			out = append(out, j.Tasks.result(i))
		}
	}
	return out
}
