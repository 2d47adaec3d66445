package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// The result cache. A task is fully determined by its content
// (tasks.ContentHash: module, argv, env, input, index, seed), so a submit
// (cmdSubmitJobCached) finds, for each new task, a done task of the same
// owner with the same content and copies its result instead of running it.
//
// The index is derived from the done tasks, never serialized: every done
// task of every job is in it, so a restored ledger rebuilds the same index
// whatever order the tasks finished in, and a log replayed from any point
// gives the same hits. Which source a hit copies is a function of the
// state alone (the oldest job's lowest task among the matches), never of
// the order entries were added, so servers agree on it and StateHash
// (which hashes the tasks, cached origin included) agrees too.
//
// Scope: a job takes results only from jobs of its own owner (credential).
// A result of a job without replicas stands on one worker's word; sharing
// them across credentials would let a submitter who also runs a worker
// plant a wrong result for content another user will submit. Each entry
// records how many agreeing results its task had (agreed: the replicas
// that agreed, 1 for a one-result task, the source's for a cached copy): a
// job with quorum Q takes only entries agreed by at least Q (cacheQuorum).
//
// Memory: one item per done task, 16 bytes with no pointer (so the
// collector never scans the index): the key, 8 bytes (the content hash's
// first 8 bytes mixed with the owner's), and the source packed into 8
// (cacheEntry: the job's slot in the index, the task's index), kept in
// sorted buckets (cacheindex.go) at 16-18 bytes a done task, against 55
// when a map's entry held the job's pointer and the agreed count. A hit is verified by
// recomputing the source's full content hash from its own job's spec, so
// a key two contents share (by chance, or crafted by a submitter who
// searched 2^32 hashes for one) is never served the other's result.
// Submits with `cache = false`, or when the index is empty, hash nothing.
type resultCache struct {
	index cacheIndex
	// jobs are the jobs with entries, by slot (job.cacheSlot); slot 0 is
	// none. free are the slots of purged jobs, for the next jobs. Which
	// slot a job gets depends on the order jobs first had a done task,
	// which a restore does not keep: slots never decide anything (lookup
	// orders sources by job sequence and index).
	jobs []*job
	free []uint32
}

// cacheEntry is a source as the index keeps it: the job's slot in the high
// 32 bits, the task's index (below tasks.MaxTasks) in the low 32.
type cacheEntry uint64

func newCacheEntry(slot uint32, idx int) cacheEntry {
	return cacheEntry(uint64(slot)<<32 | uint64(uint32(idx)))
}

func (e cacheEntry) slot() uint32 { return uint32(e >> 32) }
func (e cacheEntry) idx() int32   { return int32(uint32(e)) }

// cacheSrc is a done task a hit may copy.
type cacheSrc struct {
	j   *job
	idx int32 // tasks.MaxTasks fits
}

// agreed is how many agreeing results the source's result had
// (task.agreedCount): fixed once the task is done, so read when needed
// rather than kept in every entry.
func (s cacheSrc) agreed() int { return s.j.Tasks.at(int(s.idx)).agreedCount() }

// cacheOrigin is what a cached task records of the task it copied.
type cacheOrigin struct {
	Job    string `json:"j"`
	Index  int    `json:"i"`
	Agreed int    `json:"q"`
}

// cacheHit is a new task answered by a source; key is the new task's
// index key (its content's, as lookup computed it).
type cacheHit struct {
	idx int
	src cacheSrc
	key uint64
}

// cacheQuorum is how many agreeing results a cached result must have had
// for a job to take it: the job's quorum when every task of it is checked
// (replicas = R with quorum Q), else 1 (a job that accepts one worker's
// result, adaptive included).
func cacheQuorum(spec *tasks.JobSpec) int {
	if _, q, _ := spec.Replication(); spec.Replicated() && !spec.Adaptive {
		return q
	}
	return 1
}

func newResultCache() resultCache {
	return resultCache{index: newCacheIndex(), jobs: []*job{nil}}
}

// cacheKey is the index key of content sum submitted by owner. Its
// content part is the sum's first 8 bytes, which are the task's seed
// (tasks.Seed), so a task whose seed is known needs no hash (seedKey).
func cacheKey(sum [32]byte, owner string) uint64 {
	return seedKey(binary.BigEndian.Uint64(sum[:8]), ownerSalt(owner))
}

// seedKey is the index key of a task whose tasks.Seed is seed, of a job
// whose owner's salt is salt: the same as cacheKey of its content hash.
func seedKey(seed, salt uint64) uint64 { return seed ^ salt }

// taskKeyOf is done task idx of j's index key, from its kept seed
// (keepSeed) and its job's salt: no content hash once the task was
// granted. Apply only: it may keep the seed.
func (j *job) taskKeyOf(idx int) uint64 { return seedKey(j.keepSeed(idx), j.salt) }

// contentSeed is task idx of j's tasks.Seed: its record's when kept
// there, else computed. For the read side, which never changes a record.
func (j *job) contentSeed(idx int) uint64 {
	if t := j.Tasks.at(idx); t.flags&hasSeed != 0 {
		return t.seed
	}
	return tasks.Seed(&j.Spec, idx)
}

// keepSeed is task idx of j's tasks.Seed, computed at most once a task
// and kept in its record: a grant keeps it for the assignment the leader
// builds (contentSeed) and the result-cache key its completion adds.
// Apply only: it changes the record.
func (j *job) keepSeed(idx int) uint64 {
	if t := j.Tasks.at(idx); t.flags&hasSeed != 0 {
		return t.seed
	}
	t := j.Tasks.mut(idx)
	t.seed, t.flags = tasks.Seed(&j.Spec, idx), t.flags|hasSeed
	return t.seed
}

func ownerSalt(owner string) uint64 {
	s := sha256.Sum256([]byte(owner))
	return binary.BigEndian.Uint64(s[:8])
}

// add indexes task idx of j, which just became done.
func (c *resultCache) add(j *job, idx int) {
	c.index.put(j.taskKeyOf(idx), c.entry(j, idx))
}

// entry is task idx of j as an entry, giving j a slot if it has none.
func (c *resultCache) entry(j *job, idx int) cacheEntry {
	if j.cacheSlot == 0 {
		if n := len(c.free); n > 0 {
			j.cacheSlot, c.free = c.free[n-1], c.free[:n-1]
			c.jobs[j.cacheSlot] = j
		} else {
			j.cacheSlot = uint32(len(c.jobs))
			c.jobs = append(c.jobs, j)
		}
	}
	return newCacheEntry(j.cacheSlot, idx)
}

// src is the source e names.
func (c *resultCache) src(e cacheEntry) cacheSrc {
	return cacheSrc{j: c.jobs[e.slot()], idx: e.idx()}
}

// remove drops the sources of key that belong to the job in slot.
func (c *resultCache) remove(key uint64, slot uint32) {
	c.index.drop(key, func(e cacheEntry) bool { return e.slot() == slot })
}

// removeTask drops task idx of j from key's sources.
func (c *resultCache) removeTask(key uint64, j *job, idx int) {
	if j.cacheSlot == 0 {
		return // none of j's tasks is indexed
	}
	drop := newCacheEntry(j.cacheSlot, idx)
	c.index.drop(key, func(e cacheEntry) bool { return e == drop })
}

// release frees a purged job's slot, once its entries are gone.
func (c *resultCache) release(j *job) {
	if j.cacheSlot == 0 {
		return
	}
	c.jobs[j.cacheSlot] = nil
	c.free = append(c.free, j.cacheSlot)
	j.cacheSlot = 0
}

// uncacheJob drops a purged job's done tasks from the index: a purged
// source is never a hit. A cost in the job's size, like dropRefs, or for a
// job with a 64th of the index or more, one pass over the index.
func (l *Ledger) uncacheJob(j *job) {
	if j.cacheSlot == 0 {
		return // no task of it was ever done
	}
	if slot := j.cacheSlot; j.nDone >= l.cache.index.len()/64 { // one pass over the index is cheaper
		l.cache.index.dropAll(func(e cacheEntry) bool { return e.slot() == slot })
		l.cache.release(j)
		return
	}
	for i := 0; i < j.Tasks.len(); i++ {
		if j.Tasks.at(i).state() == tasks.TaskDone {
			l.cache.remove(j.taskKeyOf(i), j.cacheSlot)
		}
	}
	l.cache.release(j)
}

// lookup finds the source for task idx of spec, whose content hash is
// sum, submitted by owner: among the done tasks with that content agreed
// by at least need results, the one of the oldest job, lowest index.
func (c *resultCache) lookup(sum [32]byte, spec *tasks.JobSpec, idx int, owner string, need int, same *sameSpecs) (cacheSrc, bool) {
	var best cacheSrc
	found := false
	consider := func(e cacheEntry) {
		s := c.src(e)
		if s.j.Owner != owner || found && !s.before(best) || s.agreed() < need {
			return
		}
		if same.task(s.j, int(s.idx), spec, idx) || tasks.ContentHash(&s.j.Spec, int(s.idx)) == sum { // not just the same 8 bytes
			best, found = s, true
		}
	}
	c.index.each(cacheKey(sum, owner), consider)
	return best, found
}

func (s cacheSrc) before(o cacheSrc) bool {
	return cmp.Or(cmp.Compare(s.j.Seq, o.j.Seq), cmp.Compare(s.idx, o.idx)) < 0
}

// cacheHits are the tasks of a new job of owner that the cache answers:
// none for `cache = false` or an empty index (then nothing is hashed).
func (l *Ledger) cacheHits(spec *tasks.JobSpec, owner string) []cacheHit {
	if spec.NoCache || l.cache.index.len() == 0 {
		return nil
	}
	var hits []cacheHit
	same := &sameSpecs{spec: spec, memo: map[*job]bool{}}
	need := cacheQuorum(spec)
	for i := 0; i < spec.Tasks; i++ {
		sum := tasks.ContentHash(spec, i)
		if src, ok := l.cache.lookup(sum, spec, i, owner, need, same); ok {
			hits = append(hits, cacheHit{idx: i, src: src, key: cacheKey(sum, owner)})
		}
	}
	return hits
}

// sameSpecs verifies a candidate source without hashing it when its job's
// spec has every field of the content but the inputs equal to the new
// spec's (the resubmit of a job file): then the same index with the same
// input is the same content by construction. Other candidates are verified
// by their full content hash.
type sameSpecs struct {
	spec *tasks.JobSpec
	memo map[*job]bool // per source job: its spec matches spec but for inputs
}

func (s *sameSpecs) task(src *job, srcIdx int, spec *tasks.JobSpec, idx int) bool {
	if srcIdx != idx {
		return false
	}
	same, ok := s.memo[src]
	if !ok {
		same = sameButInputs(&src.Spec, s.spec)
		s.memo[src] = same
	}
	if !same {
		return false
	}
	return idx >= len(spec.Inputs) || src.Spec.Inputs[idx] == spec.Inputs[idx]
}

// sameButInputs reports whether a and b agree on every field that goes
// into a task's content (tasks.ContentHash) except the inputs, and both
// have inputs or neither.
func sameButInputs(a, b *tasks.JobSpec) bool {
	return a.ModuleHash == b.ModuleHash && a.Name == b.Name && a.Tasks == b.Tasks && a.Seed == b.Seed &&
		slices.Equal(a.Args, b.Args) && maps.Equal(a.Env, b.Env) && len(a.Inputs) == len(b.Inputs)
}

// takeHits makes each hit's task done with its source's result (exit
// code, output or its result blob, engine, worker and run time), marked
// cached. The task is then a source itself, and holds its own reference to
// a result blob: purging either job leaves the other's result.
func (l *Ledger) takeHits(j *job, hits []cacheHit, now int64) {
	items := make([]cacheItem, 0, len(hits))
	for _, h := range hits {
		src := h.src.j.Tasks.at(int(h.src.idx))
		t := j.Tasks.setOutput(h.idx, h.src.j.Tasks.stdout(int(h.src.idx)), src.stderr(), src.stdoutRef(), src.engineName())
		t.setState(tasks.TaskDone)
		t.Duration, t.Worker = src.Duration, src.Worker
		t.setExitCodePtr(src.exitCodePtr())
		t.setCached(&cacheOrigin{Job: h.src.j.ID, Index: int(h.src.idx), Agreed: h.src.agreed()})
		l.ref(j, t.stdoutRef(), +1)
		j.nQueued--
		j.nDone++
		items = append(items, cacheItem{key: h.key, e: l.cache.entry(j, h.idx)})
	}
	l.cache.index.putMany(items) // the hits are done tasks: sources now
	j.maybeFinish(now)
}

// scanCache is the index rebuilt from every job's done tasks, as each
// key's sources sorted: the oracle for CheckIndexes. It computes the keys
// itself rather than fill a second index, which would give jobs slots.
func (l *Ledger) scanCache() map[uint64][]cacheSrc {
	out := map[uint64][]cacheSrc{}
	for _, j := range l.order {
		for i := 0; i < j.Tasks.len(); i++ {
			if j.Tasks.at(i).state() == tasks.TaskDone {
				key := cacheKey(tasks.ContentHash(&j.Spec, i), j.Owner)
				out[key] = append(out[key], cacheSrc{j: j, idx: int32(i)})
			}
		}
	}
	for _, srcs := range out {
		sortSources(srcs)
	}
	return out
}

// sorted is the index as one sorted list of sources per key.
func (c *resultCache) sorted() map[uint64][]cacheSrc {
	out := map[uint64][]cacheSrc{}
	c.index.all(func(key uint64, e cacheEntry) { out[key] = append(out[key], c.src(e)) })
	for _, srcs := range out {
		sortSources(srcs)
	}
	return out
}

func sortSources(srcs []cacheSrc) {
	slices.SortFunc(srcs, func(a, b cacheSrc) int {
		return cmp.Or(cmp.Compare(a.j.Seq, b.j.Seq), cmp.Compare(a.idx, b.idx))
	})
}

// warmCache reads, for each report of a leased task with a kept seed, an
// item of the index bucket its result will go into, all before the first
// is put: each bucket is a cold cache miss (the index holds every done
// task: 400 ns a put at 10,000 workers, BENCHMARKS.md issue 15), and
// reads that depend on nothing before them overlap where one put waited
// for each. It changes no replicated state.
func (l *Ledger) warmCache(reports []api.Report) {
	var sink uint64
	for i := range reports {
		j := l.jobs[reports[i].Job]
		if j == nil || reports[i].Index < 0 || reports[i].Index >= j.Tasks.len() {
			continue
		}
		if t := j.Tasks.at(reports[i].Index); t.flags&hasSeed != 0 {
			if b := *l.cache.index.bucket(seedKey(t.seed, j.salt)); len(b) > 0 {
				sink += b[len(b)/2].key
			}
		}
	}
	l.warmed = sink // kept, so the reads are not optimized away
}
