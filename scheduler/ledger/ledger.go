package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// Ledger is the replicated state: jobs, tasks, leases, results, peers and
// inline blobs. Every method that changes it is an applyX called by the FSM
// with a decoded command; none reads a clock, a random source, the network or
// the disk, so the same log gives the same Ledger on every server.
type Ledger struct {
	jobs  map[string]*job
	order []*job // by submission, for listings and tie-breaks
	blobs map[string][]byte
	// manifests place the shards of blobs too large to keep inline.
	manifests map[string]*storage.Manifest
	// placed indexes the manifests' shards by peer; derived, not serialized.
	placed shardIndex
	// byPeer indexes the blobs by the peers holding their shards, for repair
	// planning; derived, not serialized.
	byPeer blobIndex
	// refs counts the jobs' references to each blob, for garbage
	// collection; derived, not serialized.
	refs blobRefs
	// cache indexes the done tasks by content, for submits to take their
	// results (cache.go); derived, not serialized.
	cache resultCache
	// meta says when each blob (inline or coded) arrived and whether a user
	// pinned it; garbage collection reads it.
	meta  map[string]BlobMeta
	peers map[string]*Peer
	// byWorker holds the live leases by holder (leaseindex.go): one per
	// leased task of a job without replicas, one per running replica of
	// the others; nLeases counts them. Derived, not serialized, and
	// changed only by holdLease and dropLease. spareSet is an emptied
	// worker's set, kept for the next (not replicated state).
	byWorker map[string]*heldLeases
	nLeases  int
	spareSet *heldLeases
	// joinedBy is the join credential each worker was admitted with, from
	// the peer credentials (derived, not serialized): replicas of a task
	// go to workers of distinct credentials (replicas.go).
	joinedBy map[string]string
	// requests maps a submit's request id to its job; derived from the
	// jobs, not serialized.
	requests map[string]string
	// creds are the credentials by id; credByHash finds one by its
	// secret's hash (derived, not serialized).
	creds      map[string]*Credential
	credByHash map[string]string
	// credChanges counts changes to creds: every one made in Apply adds 1
	// (FSM.CredentialChanges follows it). Not replicated state.
	credChanges uint64
	// ownerRefs counts, per job owner, the references its jobs hold to each
	// blob (derived, like refs): a submitter may read what its jobs use.
	ownerRefs map[string]blobRefs
	// blobUse is what each credential's blobs count against its quotas;
	// derived from meta, not serialized.
	blobUse map[string]*blobUsage
	// marks are the high-water marks of the maps compactMaps shrinks.
	marks mapMarks
	// freedTasks counts the tasks purges dropped since the FSM last gave
	// memory back to the OS (see FSM.Apply). Not replicated state.
	freedTasks int
	nextSeq    uint64
	// aliveWorkers counts peers with the worker role in state alive.
	aliveWorkers int
	// moduleEngines is the grid's engine per module (engines.go).
	moduleEngines map[string]string
	// warmed is what warmCache read (cache.go); not replicated state.
	warmed uint64
	// gen counts snapshots taken; task chunks older than it are shared with
	// a snapshot and copied before Apply changes them. Not replicated state.
	gen uint64
}

// taskKey names a lease: a task and the attempt that holds it (replicas
// of one task run at once under distinct attempts). The job is its
// pointer, not its id: 16 bytes hashed and compared as memory, where an
// id string made every lease index access hash the id's bytes through a
// pointer (BENCHMARKS.md issue 15). A job's leases end before it is
// purged, so a key never outlives its job.
type taskKey struct {
	job     *job
	index   uint32 // below tasks.MaxTasks
	attempt uint32 // a task's attempts are a uint32 (task.attempts)
}

// leaseKey is the key of task idx of j's lease under attempt.
func leaseKey(j *job, idx, attempt int) taskKey {
	return taskKey{job: j, index: uint32(idx), attempt: uint32(attempt)}
}

type job struct {
	ID          string
	Spec        tasks.JobSpec
	Seq         uint64
	SubmittedAt int64
	FinishedAt  int64
	Cancelled   bool
	Tasks       taskTable
	// RequestID is the client's id for the submit that created the job, so
	// a repeated submit finds it (see applySubmitJob).
	RequestID string
	// Owner is the credential that submitted it.
	Owner string
	// cacheSlot is the job's slot in the result cache's index, 0 until a
	// task of it is done (cache.go); derived, not serialized.
	cacheSlot uint32
	// salt is ownerSalt(Owner), the owner's part of its tasks' result
	// cache keys (cache.go), hashed once a job; derived, not serialized.
	salt uint64

	// The queue: tasks [fresh, n) were never leased; requeued holds tasks
	// returned by an expired or released lease or a failed attempt, oldest first.
	fresh    int
	requeued []int

	nQueued, nLeased, nDone, nFailed int
}

type Peer struct {
	ID      string   `json:"id"`
	Address string   `json:"address,omitempty"`
	Roles   []string `json:"roles,omitempty"`
	Cores   int      `json:"cores,omitempty"`
	State   string   `json:"state"`
	// Done counts the worker's accepted successful results; Failed its
	// accepted reports of a failed attempt (a trap, a timeout, a module it
	// could not fetch). A repeat of an accepted report counts once.
	Done   int `json:"done"`
	Failed int `json:"failed,omitempty"`
	// CPUNanos is the worker's credit: the run time (Report.Duration) of
	// its accepted successful results, in nanoseconds.
	CPUNanos int64    `json:"cpu_ns,omitempty"`
	Since    int64    `json:"since"`
	Engines  []string `json:"engines,omitempty"`
	// StorageAddress is where a storage peer serves shards, kept apart from
	// Address so a server that is also a storage peer keeps its API address.
	StorageAddress string `json:"storage_address,omitempty"`
	// The worker's record in replicated tasks (replicas.go): results that
	// agreed with a checked quorum, results outvoted, agreed since its
	// last outvoted one, outvoted since an operator last trusted it, and
	// whether it is distrusted (leased nothing).
	Agreed     int  `json:"agreed,omitempty"`
	Outvoted   int  `json:"outvoted,omitempty"`
	Streak     int  `json:"streak,omitempty"`
	Strikes    int  `json:"strikes,omitempty"`
	Distrusted bool `json:"distrusted,omitempty"`
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{
		jobs:       map[string]*job{},
		blobs:      map[string][]byte{},
		manifests:  map[string]*storage.Manifest{},
		placed:     shardIndex{},
		byPeer:     newBlobIndex(),
		refs:       blobRefs{},
		cache:      newResultCache(),
		meta:       map[string]BlobMeta{},
		peers:      map[string]*Peer{},
		byWorker:   map[string]*heldLeases{},
		joinedBy:   map[string]string{},
		requests:   map[string]string{},
		creds:      map[string]*Credential{},
		credByHash: map[string]string{},
		ownerRefs:  map[string]blobRefs{},
		blobUse:    map[string]*blobUsage{},
	}
}

// BlobMeta is the garbage-collection state of a blob: when it arrived and
// whether a user pinned it.
type BlobMeta struct {
	Hash    string `json:"hash"`
	Created int64  `json:"created"`
	Pinned  bool   `json:"pinned,omitempty"`
	// Owners are the credentials that put the blob (sorted): they may read
	// it and unpin it. Each is charged its size against its inline bytes
	// quota while the blob is inline.
	Owners []string `json:"owners,omitempty"`
	// PinnedBy are the credentials that pinned it (sorted), each charged
	// its size against its pinned bytes quota while it stays pinned. A pin
	// from a log before quotas names no one.
	PinnedBy []string `json:"pinned_by,omitempty"`
}

func (l *Ledger) applyPutBlob(c *PutBlobCommand) any {
	if err := l.checkBlobQuotas(c); err != nil {
		return err
	}
	l.putBlob(c)
	return nil
}

// applyPutBlobV1 applies a put of an old log, committed before quotas.
func (l *Ledger) applyPutBlobV1(c *putBlobV1) any {
	l.putBlob(&c.PutBlobCommand)
	return nil
}

func (l *Ledger) putBlob(c *PutBlobCommand) {
	l.chargeBlob(c.Hash, -1)
	if _, ok := l.blobs[c.Hash]; !ok {
		l.blobs[c.Hash] = c.Data
	}
	l.noteBlob(c.Hash, c.Now, c.Pin, c.Owner)
	l.chargeBlob(c.Hash, +1)
}

func (l *Ledger) applyPutManifest(c *PutManifestCommand) any {
	l.chargeBlob(c.Manifest.Hash, -1)
	l.setManifest(c.Manifest.Hash, c.Manifest)
	l.noteBlob(c.Manifest.Hash, c.Now, c.Pin, c.Owner)
	l.chargeBlob(c.Manifest.Hash, +1)
	return nil
}

func (l *Ledger) noteBlob(hash string, now int64, pin bool, owner string) {
	m, ok := l.meta[hash]
	if !ok {
		m = BlobMeta{Hash: hash, Created: now}
	}
	m.Pinned = m.Pinned || pin
	m.Owners = insertSorted(m.Owners, owner)
	if pin {
		m.PinnedBy = insertSorted(m.PinnedBy, owner)
	}
	l.meta[hash] = m
}

// insertSorted adds s to a sorted list unless it is empty or there, on a
// copy: a snapshot may share the old list.
func insertSorted(list []string, s string) []string {
	if i, found := slices.BinarySearch(list, s); s != "" && !found {
		return slices.Insert(slices.Clone(list), i, s)
	}
	return list
}

func (l *Ledger) applyPurgeJob(c *PurgeJobCommand) any {
	j := l.jobs[c.ID]
	if j == nil {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.ID)
	}
	if j.FinishedAt == 0 {
		return fmt.Errorf("%w: %s is %s (cancel it first)", ErrJobNotFinished, c.ID, j.state())
	}
	l.dropRefs(j)
	l.forgetModuleEngine(j.Spec.ModuleHash)
	l.uncacheJob(j)
	delete(l.jobs, c.ID)
	delete(l.requests, j.RequestID)
	l.order = slices.DeleteFunc(l.order, func(o *job) bool { return o == j })
	l.freedTasks += j.Tasks.len()
	return nil
}

func (l *Ledger) applyUnpinBlob(c *UnpinBlobCommand) any {
	m, ok := l.meta[c.Hash]
	if !ok {
		return fmt.Errorf("%w: %s", ErrBlobMissing, c.Hash)
	}
	l.chargeBlob(c.Hash, -1)
	m.Pinned, m.PinnedBy = false, nil
	l.meta[c.Hash] = m
	l.chargeBlob(c.Hash, +1)
	return nil
}

func (l *Ledger) applyUnpinOwn(c *UnpinOwnCommand) any {
	m, ok := l.meta[c.Hash]
	if !ok {
		return fmt.Errorf("%w: %s", ErrBlobMissing, c.Hash)
	}
	l.chargeBlob(c.Hash, -1)
	if i, found := slices.BinarySearch(m.PinnedBy, c.Owner); found {
		m.PinnedBy = slices.Delete(slices.Clone(m.PinnedBy), i, i+1) // a snapshot may share the list
		m.Pinned = len(m.PinnedBy) > 0
	} else if len(m.PinnedBy) == 0 {
		m.Pinned = false // pinned before pins were kept per owner
	}
	if len(m.PinnedBy) == 0 {
		m.PinnedBy = nil
	}
	l.meta[c.Hash] = m
	l.chargeBlob(c.Hash, +1)
	return nil
}

// applyDeleteBlobs returns the hashes it deleted.
func (l *Ledger) applyDeleteBlobs(c *DeleteBlobsCommand) any {
	var deleted []string
	for _, h := range c.Hashes {
		if l.refs.used(h) || l.meta[h].Pinned || !l.HasBlob(h) {
			continue
		}
		l.chargeBlob(h, -1)
		delete(l.blobs, h)
		l.setManifest(h, nil)
		delete(l.meta, h)
		deleted = append(deleted, h)
	}
	return deleted
}

// Garbage lists blobs no job uses, not pinned, that arrived before cutoff
// (so a blob uploaded for a job being submitted is left alone), sorted.
// Only the garbage is sorted, not every blob: usually there is little.
func (l *Ledger) Garbage(cutoff int64) []string {
	var out []string
	for h, m := range l.meta {
		if !l.refs.used(h) && !m.Pinned && m.Created < cutoff {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// HasBlob reports whether a blob is in the grid, inline or erasure-coded.
func (l *Ledger) HasBlob(hash string) bool {
	_, inline := l.blobs[hash]
	return inline || l.manifests[hash] != nil
}

// applySubmitJob creates a job and returns its id; the tasks the result
// cache answers are done at once and do not count against the owner's
// tasks in flight. A submit that repeats an earlier one's request id (a
// client sending it again after a lost answer) creates nothing and
// returns the earlier job's id.
func (l *Ledger) applySubmitJob(c *SubmitJobCommand) any {
	var hits []cacheHit
	return l.submitJob(c, func() error {
		if err := c.Spec.Validate(); err != nil {
			return err
		}
		if err := l.checkJobQuotas(c); err != nil {
			return err // before hashing every task for the cache
		}
		hits = l.cacheHits(&c.Spec, c.Owner)
		return l.checkSubmitQuotas(c, len(hits))
	}, func(j *job) { l.takeHits(j, hits, c.Now) })
}

// applySubmitJobV2 applies a submit of a log written before the result
// cache: bounds and quotas, no cache.
func (l *Ledger) applySubmitJobV2(c *submitJobV2) any {
	return l.submitJob(&c.SubmitJobCommand, func() error {
		if err := c.Spec.Validate(); err != nil {
			return err
		}
		return l.checkSubmitQuotas(&c.SubmitJobCommand, 0)
	}, nil)
}

// applySubmitJobV1 applies a submit of an old log by the rules it was
// committed under.
func (l *Ledger) applySubmitJobV1(c *submitJobV1) any {
	return l.submitJob(&c.SubmitJobCommand, func() error { return validateSpecV1(&c.Spec) }, nil)
}

// submitJob creates the job if check passes (a repeated request id
// answers before any check: it creates nothing), then lets fill (if any)
// finish tasks before anything can lease them.
func (l *Ledger) submitJob(c *SubmitJobCommand, check func() error, fill func(*job)) any {
	if c.RequestID != "" {
		if id, ok := l.requests[c.RequestID]; ok {
			return l.repeatedSubmit(id, c)
		}
	}
	if _, ok := l.jobs[c.ID]; ok {
		return fmt.Errorf("%w: %s", ErrJobExists, c.ID)
	}
	if err := check(); err != nil {
		return err
	}
	if !l.HasBlob(c.Spec.ModuleHash) { // inline, or erasure-coded (a large module)
		return fmt.Errorf("%w: module %s", ErrBlobMissing, c.Spec.ModuleHash)
	}
	for _, in := range c.Spec.Inputs {
		if !l.HasBlob(in.Hash) {
			return fmt.Errorf("%w: input %s (%s)", ErrBlobMissing, in.Name, in.Hash)
		}
	}
	j := &job{ID: c.ID, Spec: c.Spec, Seq: l.nextSeq, SubmittedAt: c.Now, nQueued: c.Spec.Tasks, RequestID: c.RequestID, Owner: c.Owner}
	l.nextSeq++
	j.Tasks = newTaskTable(c.Spec.Tasks, &l.gen)
	l.addJob(j)
	if fill != nil {
		fill(j)
	}
	return j.ID
}

// addJob indexes a new or restored job.
func (l *Ledger) addJob(j *job) {
	j.salt = ownerSalt(j.Owner)
	l.jobs[j.ID] = j
	l.order = append(l.order, j)
	l.refSpec(j, +1)
	if j.RequestID != "" {
		l.requests[j.RequestID] = j.ID
	}
}

// repeatedSubmit answers a submit whose request id job id already used: the
// same job again, or a refusal if the spec differs (the id was reused).
func (l *Ledger) repeatedSubmit(id string, c *SubmitJobCommand) any {
	a, _ := json.Marshal(&l.jobs[id].Spec)
	b, _ := json.Marshal(&c.Spec)
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%w: request %s already submitted job %s with another spec", ErrRequestReused, c.RequestID, id)
	}
	return id
}

// applyLeaseTasks picks tasks for the worker: highest priority first; among
// equals the job with the fewest leased tasks (fair share, so a small job
// submitted after a huge one starts at once); then the older job. A task
// whose last attempt failed on this worker goes to another one while another
// live worker exists.
//
// A distrusted worker is refused (ErrDistrusted). A job with replicas
// grants one replica of a task per worker, placed by replicas.go's rules.
func (l *Ledger) applyLeaseTasks(c *LeaseTasksCommand) any {
	if p := l.peers[c.Worker]; p != nil && p.Distrusted {
		return fmt.Errorf("%w: %s", ErrDistrusted, c.Worker)
	}
	var grants []Grant
	avoidRepeats := l.otherWorkerAlive(c.Worker)
	var skip map[*job]bool // jobs with nothing this worker may take
	var pl *placement      // made when a job with replicas is met
	for len(grants) < c.Max {
		j := l.nextRunnableJob(skip)
		if j == nil {
			break
		}
		if need := j.Spec.NeedsEngine(); need != "" && !slices.Contains(c.Engines, need) {
			skip = skipJob(skip, j)
			continue
		}
		if j.Spec.Replicated() {
			if pl == nil {
				pl = l.placementFor(c, avoidRepeats)
			}
			g, ok := l.leaseReplica(j, c, pl)
			if !ok {
				skip = skipJob(skip, j)
				continue
			}
			grants = append(grants, g)
			continue
		}
		idx, ok := j.popQueued(c.Worker, avoidRepeats)
		if !ok {
			skip = skipJob(skip, j)
			continue
		}
		t := j.Tasks.mut(idx)
		t.setState(tasks.TaskLeased)
		t.addAttempt(+1)
		t.Worker = c.Worker
		t.Expiry = leaseExpiry(c.Now, j.Spec.Timeout, c.Slack)
		j.nQueued--
		j.nLeased++
		l.holdLease(leaseKey(j, idx, t.attemptCount()), c.Worker)
		j.keepSeed(idx) // for the assignment the leader builds next
		grants = append(grants, Grant{Job: j.ID, Index: idx, Attempt: t.attemptCount(), Expiry: t.Expiry})
	}
	return grants
}

// leaseExpiry is now + timeout + slack, saturating at the largest time
// instead of wrapping to the past: a job from an old log may carry any
// timeout, and a wrapped expiry would expire the lease at once.
func leaseExpiry(now int64, timeout time.Duration, slack int64) int64 {
	return saturatingAdd(saturatingAdd(now, int64(timeout)), slack)
}

func saturatingAdd(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

func skipJob(skip map[*job]bool, j *job) map[*job]bool {
	if skip == nil {
		skip = map[*job]bool{}
	}
	skip[j] = true
	return skip
}

func (l *Ledger) nextRunnableJob(skip map[*job]bool) *job {
	var best *job
	for _, j := range l.order {
		if !j.hasQueued() || j.Cancelled || skip[j] {
			continue
		}
		if best == nil || j.Spec.Priority > best.Spec.Priority ||
			j.Spec.Priority == best.Spec.Priority && j.nLeased < best.nLeased {
			best = j
		}
	}
	return best
}

// hasQueued reports whether the job may have a task to lease: a queued
// task, or for a job with replicas, a task wanting another replica (it
// may be leased already).
func (j *job) hasQueued() bool {
	if j.Spec.Replicated() {
		return len(j.requeued) > 0 || j.fresh < j.Tasks.len()
	}
	return j.nQueued > 0
}

// popQueued takes the oldest requeued task (skipping ones that failed on
// worker when avoidRepeats), else the next never-leased one still queued
// (the result cache finishes some at submit).
func (j *job) popQueued(worker string, avoidRepeats bool) (int, bool) {
	for k, idx := range j.requeued {
		if avoidRepeats && j.Tasks.at(idx).failedOn() == worker {
			continue
		}
		if k == 0 {
			j.requeued = j.requeued[1:]
		} else {
			j.requeued = slices.Delete(j.requeued, k, k+1)
		}
		return idx, true
	}
	for j.fresh < j.Tasks.len() {
		j.fresh++
		if j.Tasks.at(j.fresh-1).state() == tasks.TaskQueued {
			return j.fresh - 1, true
		}
	}
	return 0, false
}

// otherWorkerAlive reports whether a live worker other than id is known.
func (l *Ledger) otherWorkerAlive(id string) bool {
	n := l.aliveWorkers
	if p := l.peers[id]; p != nil && p.IsAliveWorker() {
		n--
	}
	return n > 0
}

func (p *Peer) IsAliveWorker() bool {
	return p.State == "alive" && slices.Contains(p.Roles, "worker")
}

// applyCompleteTasks records outcomes; the response says per report whether it
// was accepted.
func (l *Ledger) applyCompleteTasks(c *CompleteTasksCommand) any {
	accepted := make([]bool, len(c.Reports))
	p := l.peers[c.Worker]
	l.warmCache(c.Reports)
	for i := range c.Reports {
		var fresh bool
		accepted[i], fresh = l.completeTask(c.Worker, c.Now, &c.Reports[i])
		if fresh && p != nil {
			p.count(&c.Reports[i])
		}
	}
	return accepted
}

// count adds an accepted report to its worker's tallies and credit.
func (p *Peer) count(r *api.Report) {
	if r.ErrorKind != "" {
		p.Failed++
	} else {
		p.Done++
	}
	p.CPUNanos += credit(r)
}

// credit is what an accepted report adds to its worker's CPU time: the run
// time of a successful result (a failure earns none). The executor's
// Duration excludes time paused, so it is CPU given, not time held. A job
// without replicas credits what one worker said it did; a replicated task
// credits only its agreeing replicas, when decided (replicas.go, judge).
func credit(r *api.Report) int64 {
	if r.ErrorKind != "" || r.Duration < 0 {
		return 0
	}
	return int64(r.Duration)
}

// completeTask records one report. accepted says whether it is the task's
// outcome; fresh whether it changed the ledger (false for a repeat of a
// report already accepted, which clients may send again when its answer was
// lost: accepted again, changing nothing).
func (l *Ledger) completeTask(worker string, now int64, r *api.Report) (accepted, fresh bool) {
	j := l.jobs[r.Job]
	if pt := l.peekTask(r.Job, r.Index); pt == nil {
		return false, false
	} else if j.Spec.Replicated() {
		return l.completeReplica(j, worker, now, r), false // counts its worker's tallies itself
	} else if repeatsAccepted(pt, worker, r) {
		return true, false
	}
	t := j.Tasks.mut(r.Index)
	if t.state() != tasks.TaskLeased || t.attemptCount() != r.Attempt || t.Worker != worker {
		t.addLate()
		return false, false
	}
	l.endLease(j, r.Index)
	t.Duration = int64(r.Duration)
	t.setExitCode(r.ExitCode)
	t.setError(r.ErrorKind, r.Error)
	l.replaceRef(j, t.stdoutRef(), r.StdoutBlob) // a retry's report replaces the last attempt's
	j.Tasks.setOutput(r.Index, r.Stdout, r.Stderr, r.StdoutBlob, r.Engine)
	if r.ErrorKind == "" {
		t.setState(tasks.TaskDone)
		j.nDone++
		l.cache.add(j, r.Index)
	} else {
		t.setFailedOn(worker)
		l.failAttempt(j, r.Index)
	}
	j.maybeFinish(now)
	return true, true
}

// smallExitCodes are shared by every replica that exited with one of
// them, so a vote's exit code costs a pointer, not an allocation; they are
// never written through.
var smallExitCodes = func() (codes [256]int) {
	for i := range codes {
		codes[i] = i
	}
	return codes
}()

// exitCode is a pointer to code that holds nothing else alive: pointing
// into the command's report would keep the whole decoded batch of reports
// (about 200 bytes a task) as long as the replica.
func exitCode(code int) *int {
	if code >= 0 && code < len(smallExitCodes) {
		return &smallExitCodes[code]
	}
	return &code
}

// repeatsAccepted reports whether r is the report the task already accepted
// for this attempt from this worker: done by it, or failed by it with the
// same kind (not expired, which no report caused).
func repeatsAccepted(t *task, worker string, r *api.Report) bool {
	if t.attemptCount() != r.Attempt || t.state() == tasks.TaskLeased {
		return false
	}
	switch {
	case r.ErrorKind == "":
		return t.state() == tasks.TaskDone && t.Worker == worker
	default:
		return t.failedOn() == worker && t.errorKind() == r.ErrorKind && t.state() != tasks.TaskDone
	}
}

// failAttempt queues the task again, or fails it when it has used its retries.
func (l *Ledger) failAttempt(j *job, idx int) {
	t := j.Tasks.mut(idx)
	if t.attemptCount() > j.Spec.Retries || j.Cancelled {
		t.setState(tasks.TaskFailed)
		j.nFailed++
		return
	}
	l.requeue(j, idx)
}

func (l *Ledger) requeue(j *job, idx int) {
	t := j.Tasks.mut(idx)
	t.setState(tasks.TaskQueued)
	t.Worker = ""
	j.requeued = append(j.requeued, idx)
	j.nQueued++
}

func (l *Ledger) endLease(j *job, idx int) {
	t := j.Tasks.at(idx)
	l.dropLease(leaseKey(j, idx, t.attemptCount()), t.Worker)
	j.Tasks.mut(idx).Expiry = 0
	j.nLeased--
}

// lookupTask finds a task for Apply to change.
func (l *Ledger) lookupTask(id string, idx int) (*job, *task) {
	j := l.jobs[id]
	if j == nil || idx < 0 || idx >= j.Tasks.len() {
		return nil, nil
	}
	return j, j.Tasks.mut(idx)
}

// peekTask finds a task to read (outside Apply, under the read lock).
func (l *Ledger) peekTask(id string, idx int) *task {
	j := l.jobs[id]
	if j == nil || idx < 0 || idx >= j.Tasks.len() {
		return nil
	}
	return j.Tasks.at(idx)
}

func (j *job) maybeFinish(now int64) {
	if j.FinishedAt == 0 && j.nDone+j.nFailed == j.Tasks.len() {
		j.FinishedAt = now
	}
}

// applyExpireLeases counts an expired lease as a failed attempt (BOINC counts a
// missed deadline as an error too), so a task that keeps killing its workers
// ends failed instead of looping forever.
func (l *Ledger) applyExpireLeases(c *ExpireLeasesCommand) any {
	n := 0
	for _, ref := range c.Tasks {
		j, t := l.lookupTask(ref.Job, ref.Index)
		if t != nil && j.Spec.Replicated() {
			if l.expireReplica(j, ref, c.Reason, c.Now) {
				n++
			}
			continue
		}
		if t == nil || t.state() != tasks.TaskLeased || t.attemptCount() != ref.Attempt {
			continue
		}
		l.endLease(j, ref.Index)
		t.setFailedOn(t.Worker)
		t.setError("lease_expired", fmt.Sprintf("lease expired: %s", c.Reason))
		l.failAttempt(j, ref.Index)
		j.maybeFinish(c.Now)
		n++
	}
	return n
}

// applyReleaseTasks takes back leases a worker gave up unrun: queued again at
// once, and the attempt does not count.
func (l *Ledger) applyReleaseTasks(c *ReleaseTasksCommand) any {
	n := 0
	for _, ref := range c.Tasks {
		if l.releaseOne(c.Worker, ref, c.Now) {
			n++
		}
	}
	return n
}

// releaseOne takes back one lease worker gave up unrun, reporting whether
// it held it.
func (l *Ledger) releaseOne(worker string, ref api.TaskRef, now int64) bool {
	j, t := l.peekJobTask(ref.Job, ref.Index)
	if t != nil && j.Spec.Replicated() {
		return l.releaseReplica(j, worker, ref, now)
	}
	if t == nil || t.state() != tasks.TaskLeased || t.attemptCount() != ref.Attempt || t.Worker != worker {
		return false
	}
	t = j.Tasks.mut(ref.Index)
	l.endLease(j, ref.Index)
	t.addAttempt(-1)
	if j.Cancelled {
		t.setState(tasks.TaskFailed)
		j.nFailed++
	} else {
		l.requeue(j, ref.Index)
	}
	j.maybeFinish(now)
	return true
}

// peekJobTask finds a task and its job without marking the task changed.
func (l *Ledger) peekJobTask(id string, idx int) (*job, *task) {
	j := l.jobs[id]
	if j == nil || idx < 0 || idx >= j.Tasks.len() {
		return nil, nil
	}
	return j, j.Tasks.at(idx)
}

// applyRenewLeases pushes back the expiry of the named leases the worker
// still holds (see RenewLeasesCommand); it never brings one forward. The
// response is how many it renewed.
func (l *Ledger) applyRenewLeases(c *RenewLeasesCommand) any {
	n := 0
	for _, ref := range c.Tasks {
		j, t := l.lookupTask(ref.Job, ref.Index)
		if t != nil && j.Spec.Replicated() {
			if l.renewReplica(j, c.Worker, ref, leaseExpiry(c.Now, j.Spec.Timeout, c.Slack)) {
				n++
			}
			continue
		}
		if t == nil || t.state() != tasks.TaskLeased || t.attemptCount() != ref.Attempt || t.Worker != c.Worker {
			continue
		}
		expiry := leaseExpiry(c.Now, j.Spec.Timeout, c.Slack)
		if expiry <= t.Expiry {
			continue
		}
		t.Expiry = expiry
		n++
	}
	return n
}

// applyCancelJob fails every unfinished task with kind "cancelled". Leased
// tasks are failed at once; their late reports are ignored.
func (l *Ledger) applyCancelJob(c *CancelJobCommand) any {
	j := l.jobs[c.ID]
	if j == nil {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.ID)
	}
	if j.FinishedAt != 0 {
		return fmt.Errorf("%w: %s", ErrJobFinished, c.ID)
	}
	j.Cancelled = true
	for i := 0; i < j.Tasks.len(); i++ {
		if s := j.Tasks.at(i).state(); s != tasks.TaskLeased && s != tasks.TaskQueued {
			continue
		}
		if j.Spec.Replicated() {
			l.cancelReplicated(j, i, c.Now)
			continue
		}
		t := j.Tasks.mut(i)
		switch t.state() {
		case tasks.TaskLeased:
			l.endLease(j, i)
		case tasks.TaskQueued:
			j.nQueued--
		}
		t.setState(tasks.TaskFailed)
		t.setError("cancelled", "job cancelled")
		j.nFailed++
	}
	j.requeued, j.fresh = nil, j.Tasks.len()
	j.maybeFinish(c.Now)
	return nil
}

func (l *Ledger) applyUpsertPeer(c *UpsertPeerCommand) any {
	p := l.peers[c.ID]
	if p == nil {
		p = &Peer{ID: c.ID}
		l.peers[c.ID] = p
	}
	if p.IsAliveWorker() {
		l.aliveWorkers--
	}
	defer func() {
		if p.IsAliveWorker() {
			l.aliveWorkers++
		}
	}()
	if c.Address != "" {
		p.Address = c.Address
	}
	if c.StorageAddress != "" {
		p.StorageAddress = c.StorageAddress
	}
	for _, r := range c.Roles { // a peer may hold several roles: keep them all
		if !slices.Contains(p.Roles, r) {
			p.Roles = append(p.Roles, r)
			slices.Sort(p.Roles)
		}
	}
	if c.Cores > 0 {
		p.Cores = c.Cores
	}
	if len(c.Engines) > 0 {
		p.Engines = c.Engines
	}
	if p.State != c.State {
		p.State, p.Since = c.State, c.Now
	}
	return nil
}

// state reports a job's state from its counters.
func (j *job) state() tasks.JobState {
	switch {
	case j.Cancelled:
		return tasks.JobCancelled
	case j.FinishedAt != 0 && j.nFailed > 0:
		return tasks.JobFailed
	case j.FinishedAt != 0:
		return tasks.JobComplete
	case j.nQueued == j.Tasks.len():
		return tasks.JobQueued
	default:
		return tasks.JobRunning
	}
}

// ExpiredLeases lists leases whose expiry is at or before now, sorted. It
// walks the live leases (the leader asks a few times a TTL).
func (l *Ledger) ExpiredLeases(now int64) []api.TaskRef {
	var out []api.TaskRef
	for _, h := range l.byWorker {
		for k := range h.keys {
			if k.expiryOf() <= now {
				out = append(out, k.ref())
			}
		}
	}
	sortRefs(out)
	return out
}

func sortRefs(refs []api.TaskRef) {
	sort.Slice(refs, func(a, b int) bool {
		if refs[a].Job != refs[b].Job {
			return refs[a].Job < refs[b].Job
		}
		if refs[a].Index != refs[b].Index {
			return refs[a].Index < refs[b].Index
		}
		return refs[a].Attempt < refs[b].Attempt
	})
}

// HasQueued reports whether any job has a task waiting.
func (l *Ledger) HasQueued() bool {
	return l.nextRunnableJob(nil) != nil
}
