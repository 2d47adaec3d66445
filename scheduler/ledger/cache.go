package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

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
// Memory: one map entry per done task, keyed by 8 bytes (the content
// hash's first 8 bytes mixed with the owner's), about 32 bytes each; a hit
// is verified by recomputing the source's full content hash. Submits with
// `cache = false`, or when the index is empty, hash nothing.
type resultCache struct {
	first map[uint64]cacheSrc
	// more holds the other sources of a key shared by several done tasks
	// (the same content done twice, or an 8-byte collision): rare.
	more map[uint64][]cacheSrc
}

// cacheSrc is a done task a hit may copy.
type cacheSrc struct {
	j   *job
	idx int32 // tasks.MaxTasks fits
	// agreed is how many agreeing results the task's result had
	// (task.agreedCount).
	agreed int32
}

// cacheOrigin is what a cached task records of the task it copied.
type cacheOrigin struct {
	Job    string `json:"j"`
	Index  int    `json:"i"`
	Agreed int    `json:"q"`
}

// cacheHit is a new task answered by a source.
type cacheHit struct {
	idx int
	src cacheSrc
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
	return resultCache{first: map[uint64]cacheSrc{}, more: map[uint64][]cacheSrc{}}
}

// cacheKey is the index key of content sum submitted by owner.
func cacheKey(sum [32]byte, owner string) uint64 {
	return binary.BigEndian.Uint64(sum[:8]) ^ ownerSalt(owner)
}

func ownerSalt(owner string) uint64 {
	s := sha256.Sum256([]byte(owner))
	return binary.BigEndian.Uint64(s[:8])
}

// add indexes task idx of j, which just became done.
func (c *resultCache) add(j *job, idx int) {
	key := cacheKey(tasks.ContentHash(&j.Spec, idx), j.Owner)
	c.put(key, cacheSrc{j: j, idx: int32(idx), agreed: int32(j.Tasks.at(idx).agreedCount())})
}

func (c *resultCache) put(key uint64, src cacheSrc) {
	if _, ok := c.first[key]; !ok {
		c.first[key] = src
		return
	}
	c.more[key] = append(c.more[key], src)
}

// remove drops the sources of key that belong to j.
func (c *resultCache) remove(key uint64, j *job) {
	rest := slices.DeleteFunc(c.more[key], func(s cacheSrc) bool { return s.j == j })
	if f, ok := c.first[key]; ok && f.j == j {
		if len(rest) == 0 {
			delete(c.first, key)
		} else {
			c.first[key], rest = rest[0], rest[1:]
		}
	}
	if len(rest) == 0 {
		delete(c.more, key)
	} else {
		c.more[key] = rest
	}
}

// removeTask drops task idx of j from key's sources.
func (c *resultCache) removeTask(key uint64, j *job, idx int) {
	all := append([]cacheSrc(nil), c.more[key]...)
	if f, ok := c.first[key]; ok {
		all = append([]cacheSrc{f}, all...)
	}
	all = slices.DeleteFunc(all, func(s cacheSrc) bool { return s.j == j && int(s.idx) == idx })
	delete(c.first, key)
	delete(c.more, key)
	for _, s := range all {
		c.put(key, s)
	}
}

// uncacheJob drops a purged job's done tasks from the index: a purged
// source is never a hit. A cost in the job's size, like dropRefs.
func (l *Ledger) uncacheJob(j *job) {
	for i := 0; i < j.Tasks.len(); i++ {
		if j.Tasks.at(i).state() == tasks.TaskDone {
			l.cache.remove(cacheKey(tasks.ContentHash(&j.Spec, i), j.Owner), j)
		}
	}
}

// lookup finds the source for task idx of spec, whose content hash is
// sum, submitted by owner: among the done tasks with that content agreed
// by at least need results, the one of the oldest job, lowest index.
func (c *resultCache) lookup(sum [32]byte, spec *tasks.JobSpec, idx int, owner string, need int, same *sameSpecs) (cacheSrc, bool) {
	key := cacheKey(sum, owner)
	first, ok := c.first[key]
	if !ok {
		return cacheSrc{}, false
	}
	var best cacheSrc
	found := false
	consider := func(s cacheSrc) {
		if int(s.agreed) < need || s.j.Owner != owner || found && !s.before(best) {
			return
		}
		if same.task(s.j, int(s.idx), spec, idx) || tasks.ContentHash(&s.j.Spec, int(s.idx)) == sum { // not just the same 8 bytes
			best, found = s, true
		}
	}
	consider(first)
	for _, s := range c.more[key] {
		consider(s)
	}
	return best, found
}

func (s cacheSrc) before(o cacheSrc) bool {
	return cmp.Or(cmp.Compare(s.j.Seq, o.j.Seq), cmp.Compare(s.idx, o.idx)) < 0
}

// cacheHits are the tasks of a new job of owner that the cache answers:
// none for `cache = false` or an empty index (then nothing is hashed).
func (l *Ledger) cacheHits(spec *tasks.JobSpec, owner string) []cacheHit {
	if spec.NoCache || len(l.cache.first) == 0 {
		return nil
	}
	var hits []cacheHit
	same := &sameSpecs{spec: spec, memo: map[*job]bool{}}
	need := cacheQuorum(spec)
	for i := 0; i < spec.Tasks; i++ {
		if src, ok := l.cache.lookup(tasks.ContentHash(spec, i), spec, i, owner, need, same); ok {
			hits = append(hits, cacheHit{idx: i, src: src})
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
	for _, h := range hits {
		src := h.src.j.Tasks.at(int(h.src.idx))
		t := j.Tasks.mut(h.idx)
		t.setState(tasks.TaskDone)
		t.Duration, t.Worker = src.Duration, src.Worker
		t.setExitCodePtr(src.exitCodePtr())
		t.setOutput(src.Stdout, src.stderr(), src.stdoutRef(), src.engineName())
		t.setCached(&cacheOrigin{Job: h.src.j.ID, Index: int(h.src.idx), Agreed: int(h.src.agreed)})
		l.ref(j, t.stdoutRef(), +1)
		j.nQueued--
		j.nDone++
		l.cache.add(j, h.idx)
	}
	j.maybeFinish(now)
}

// scanCache rebuilds the index from every job's done tasks, each key's
// sources sorted: the oracle for CheckIndexes.
func (l *Ledger) scanCache() map[uint64][]cacheSrc {
	c := newResultCache()
	for _, j := range l.order {
		for i := 0; i < j.Tasks.len(); i++ {
			if j.Tasks.at(i).state() == tasks.TaskDone {
				c.add(j, i)
			}
		}
	}
	return c.sorted()
}

// sorted is the index as one sorted list of sources per key.
func (c *resultCache) sorted() map[uint64][]cacheSrc {
	out := make(map[uint64][]cacheSrc, len(c.first))
	for key, f := range c.first {
		all := append([]cacheSrc{f}, c.more[key]...)
		slices.SortFunc(all, func(a, b cacheSrc) int {
			return cmp.Or(cmp.Compare(a.j.Seq, b.j.Seq), cmp.Compare(a.idx, b.idx))
		})
		out[key] = all
	}
	return out
}
