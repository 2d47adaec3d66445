package ledger

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// cacheInputs puts n small inline input blobs and returns their hashes.
func (a *applier) cacheInputs(n int, salt string) []tasks.Input {
	var ins []tasks.Input
	for i := range n {
		data := []byte(fmt.Sprintf("input %d %s", i, salt))
		a.apply(&PutBlobCommand{Hash: storage.Hash(data), Data: data, Now: a.now})
		ins = append(ins, tasks.Input{Name: fmt.Sprint(i), Hash: storage.Hash(data)})
	}
	return ins
}

func cacheSpec(inputs []tasks.Input) tasks.JobSpec {
	return tasks.JobSpec{Name: "sim", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: len(inputs),
		Inputs: inputs, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}
}

// runAll submits spec as id, leases every queued task to worker and
// completes each with stdout "out <index>" (kind fails the listed indexes).
func (a *applier) runAll(id, owner string, spec tasks.JobSpec, failed ...int) {
	a.t.Helper()
	if err := a.submitAs(owner, id, spec); err != nil {
		a.t.Fatal(err)
	}
	for _, g := range a.lease("w1", spec.Tasks) {
		kind := ""
		if slices.Contains(failed, g.Index) {
			kind = "trap"
		}
		a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: []api.Report{{TaskRef: g.Ref(),
			Result: tasks.Result{ErrorKind: kind, Stdout: []byte(fmt.Sprint("out ", g.Index)), Duration: 7, Engine: "wazero"}}}})
	}
}

// queuedIndexes are the indexes of job id's tasks still queued.
func (a *applier) queuedIndexes(id string) []int {
	var out []int
	j := a.job(id)
	for i := 0; i < j.Tasks.len(); i++ {
		if j.Tasks.at(i).state() == tasks.TaskQueued {
			out = append(out, i)
		}
	}
	return out
}

func (a *applier) checkIndexes() {
	a.t.Helper()
	var err error
	a.fsm.View(func(l *Ledger) { err = l.CheckIndexes() })
	if err != nil {
		a.t.Fatal(err)
	}
}

// TestCache_ResubmitIsDoneAtSubmitWithoutLeases: the same job submitted
// again is complete at submit, leases nothing, and each task carries its
// source's result byte for byte, marked as cached from it.
func TestCache_ResubmitIsDoneAtSubmitWithoutLeases(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	spec := cacheSpec(a.cacheInputs(5, ""))
	a.runAll("a", "", spec)
	before := a.peer("w1")

	if err := a.submitAs("", "b", spec); err != nil {
		t.Fatal(err)
	}
	if g := a.lease("w1", 100); len(g) != 0 {
		t.Fatalf("leased %v after a resubmit the cache answers", g)
	}
	b := a.job("b")
	if b.state() != tasks.JobComplete || b.nDone != 5 || b.nQueued != 0 || b.FinishedAt != a.now {
		t.Fatalf("resubmit: state %s done %d queued %d finished %d", b.state(), b.nDone, b.nQueued, b.FinishedAt)
	}
	var st *api.JobStatus
	a.fsm.View(func(l *Ledger) { st, _ = l.JobStatus("b") })
	for i := range 5 {
		got, src := b.Tasks.at(i), &a.job("a").Tasks
		if code, ok := got.exitCode(); string(b.Tasks.stdout(i)) != string(src.stdout(i)) || !ok || code != 0 || got.engineName() != "wazero" || got.Duration != 7 || got.attemptCount() != 0 {
			t.Fatalf("task %d: %+v, want the result of %+v", i, b.Tasks.record(i), src.record(i))
		}
		if c := st.TaskStats[i].CachedFrom; c == nil || *c != (api.CachedFrom{Job: "a", Index: i, Agreed: 1}) {
			t.Fatalf("task %d status cached_from %+v, want a/%d agreed 1", i, c, i)
		}
	}
	if after := a.peer("w1"); after.Done != before.Done || after.CPUNanos != before.CPUNanos {
		t.Fatalf("worker credited for cached results: %+v then %+v", before, after)
	}
	a.checkIndexes()
}

// TestCache_ChangedInputOrSeedRerunsExactlyThoseTasks: one input changed
// re-runs that task only; another seed re-runs every task.
func TestCache_ChangedInputOrSeedRerunsExactlyThoseTasks(t *testing.T) {
	a := newApplier(t)
	spec := cacheSpec(a.cacheInputs(6, ""))
	a.runAll("a", "", spec)

	changed := spec
	changed.Inputs = slices.Clone(spec.Inputs)
	changed.Inputs[3] = a.cacheInputs(4, "changed")[3]
	if err := a.submitAs("", "b", changed); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("b"); !slices.Equal(q, []int{3}) {
		t.Fatalf("queued %v after changing input 3, want [3]", q)
	}
	if g := a.lease("w1", 100); len(g) != 1 || g[0].Index != 3 || g[0].Job != "b" {
		t.Fatalf("leased %v, want b/3 only", g)
	}

	reseeded := spec
	reseeded.Seed = 42
	if err := a.submitAs("", "c", reseeded); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("c"); len(q) != 6 {
		t.Fatalf("queued %v after a new seed, want all 6", q)
	}
	a.checkIndexes()
}

// TestCache_FailedOrPurgedSourceIsNoHit: a failed task is not cached; a
// purged job's results are gone from the cache, but a job that took them
// keeps them (and its own reference to a result blob) and serves them.
func TestCache_FailedOrPurgedSourceIsNoHit(t *testing.T) {
	a := newApplier(t)
	spec := cacheSpec(a.cacheInputs(3, ""))
	a.runAll("a", "", spec, 1)
	if err := a.submitAs("", "b", spec); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("b"); !slices.Equal(q, []int{1}) {
		t.Fatalf("queued %v, want [1]: the failed task is not a hit", q)
	}
	a.apply(&CancelJobCommand{ID: "b", Now: a.now})
	for _, id := range []string{"a", "b"} {
		if resp := a.apply(&PurgeJobCommand{ID: id}); resp != nil {
			t.Fatal(resp)
		}
	}
	if err := a.submitAs("", "c", spec); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("c"); len(q) != 3 {
		t.Fatalf("queued %v after purging every source, want all 3", q)
	}
	a.checkIndexes()
}

// TestCache_SharedResultBlobSurvivesEitherPurge: a cached task holds its
// own reference to its source's result blob, so purging either job keeps
// the blob for the other, and it is garbage only when both are gone. After
// the source's purge the copy serves the next submit.
func TestCache_SharedResultBlobSurvivesEitherPurge(t *testing.T) {
	a := newApplier(t)
	r := rand.New(rand.NewPCG(3, 3))
	man := storagetest.RandomManifest(r, 1, benchPeers, 0)
	a.apply(&PutManifestCommand{Manifest: man, Now: 10})
	spec := cacheSpec(a.cacheInputs(1, ""))
	if err := a.submitAs("", "a", spec); err != nil {
		t.Fatal(err)
	}
	g := a.lease("w1", 1)[0]
	a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: []api.Report{{TaskRef: g.Ref(), Result: tasks.Result{StdoutBlob: man.Hash}}}})
	if err := a.submitAs("", "b", spec); err != nil {
		t.Fatal(err)
	}
	garbage := func() (g []string) {
		a.fsm.View(func(l *Ledger) { g = l.Garbage(1 << 62) })
		return g
	}
	purge := func(id string) {
		if resp := a.apply(&PurgeJobCommand{ID: id}); resp != nil {
			t.Fatal(resp)
		}
	}
	if ref := a.job("b").Tasks.at(0).stdoutRef(); ref != man.Hash {
		t.Fatalf("cached task's result blob %q, want %s", ref, man.Hash)
	}
	purge("a")
	if slices.Contains(garbage(), man.Hash) {
		t.Fatal("the result blob is garbage after purging its source, while the cached job still uses it")
	}
	if err := a.submitAs("", "c", spec); err != nil {
		t.Fatal(err)
	}
	if c := a.job("c"); c.nDone != 1 || c.Tasks.at(0).cached().Job != "b" {
		t.Fatalf("after the source's purge, c done %d cached from %+v, want b's copy", c.nDone, c.Tasks.at(0).cached())
	}
	purge("b")
	purge("c")
	if !slices.Contains(garbage(), man.Hash) {
		t.Fatal("the result blob is not garbage once every job using it is purged")
	}
	a.checkIndexes()
}

// TestCache_OffForNoCacheOldSubmitsAndOtherOwners: `cache = false` runs
// every task (and its results still fill the cache); a submit of the shape
// before the cache (type 25, an old log) takes no hit; nor does another
// credential's job.
func TestCache_OffForNoCacheOldSubmitsAndOtherOwners(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("alice", api.CredSubmitter, nil)
	a.credentialWith("bob", api.CredSubmitter, nil)
	spec := cacheSpec(a.cacheInputs(4, ""))
	off := spec
	off.NoCache = true
	a.runAll("a", "alice", off)
	if d := a.job("a").nDone; d != 4 {
		t.Fatalf("cache = false job did not run: done %d of 4", d)
	}
	if err := a.submitAs("alice", "nocache", off); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("nocache"); len(q) != 4 {
		t.Fatalf("cache = false: queued %v, want all 4", q)
	}
	if resp := a.apply(&submitJobV2{SubmitJobCommand{ID: "old", Spec: spec, Now: a.now, Owner: "alice"}}); resp != "old" {
		t.Fatalf("old-shape submit: %v", resp)
	}
	if q := a.queuedIndexes("old"); len(q) != 4 {
		t.Fatalf("old-shape submit: queued %v, want all 4 (no cache before type 27)", q)
	}
	if err := a.submitAs("bob", "bobs", spec); err != nil {
		t.Fatal(err)
	}
	if q := a.queuedIndexes("bobs"); len(q) != 4 {
		t.Fatalf("another owner's job: queued %v, want all 4", q)
	}
	if err := a.submitAs("alice", "again", spec); err != nil {
		t.Fatal(err)
	}
	if j := a.job("again"); j.nDone != 4 || j.Tasks.at(0).cached().Job != "a" {
		t.Fatalf("the cache = false job's results did not fill the cache: done %d", j.nDone)
	}
	a.checkIndexes()
}

// TestCache_CachedTasksAreNotInFlight: a job the cache answers adds no
// tasks in flight, so it is accepted at a quota that a job to run is not.
func TestCache_CachedTasksAreNotInFlight(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("alice", api.CredSubmitter, &api.Quotas{MaxTasksPerJob: 10, MaxTasksInFlight: 4, MaxJobsQueued: 1,
		MaxInlineBytes: api.Unlimited, MaxPinnedBytes: api.Unlimited, MaxPriority: tasks.MaxPriority, MaxTimeout: tasks.TimeoutLimit})
	spec := cacheSpec(a.cacheInputs(4, ""))
	a.runAll("a", "alice", spec)
	other := cacheSpec(a.cacheInputs(4, "other"))
	if err := a.submitAs("alice", "busy", other); err != nil {
		t.Fatal(err)
	}
	if err := a.submitAs("alice", "b", spec); err != nil {
		t.Fatalf("a resubmit the cache answers whole was refused: %v", err)
	}
	var use api.QuotaUsage
	a.fsm.View(func(l *Ledger) { use = l.Usage("alice") })
	if use.TasksInFlight != 4 || use.JobsQueued != 1 {
		t.Fatalf("usage %+v, want only busy's 4 tasks and 1 job", use)
	}
	half := spec
	half.Inputs = slices.Clone(spec.Inputs)
	half.Inputs[0] = other.Inputs[0]
	wantQuotaError(t, a.submitAs("alice", "c", half), "max_jobs_queued")
}

// TestCache_SnapshotRestoreKeepsHits: a ledger restored from a snapshot
// gives the same hits as the one that took it, and the same StateHash.
func TestCache_SnapshotRestoreKeepsHits(t *testing.T) {
	a := newApplier(t)
	spec := cacheSpec(a.cacheInputs(4, ""))
	a.runAll("a", "", spec, 2)
	if err := a.submitAs("", "b", spec); err != nil {
		t.Fatal(err)
	}
	extra := a.cacheInputs(2, "x")
	restored := snapshotInto(t, a.fsm)
	if restored.StateHash() != a.fsm.StateHash() {
		t.Fatal("state hashes differ right after restore")
	}
	restored.View(func(l *Ledger) {
		if err := l.CheckIndexes(); err != nil {
			t.Fatal(err)
		}
	})
	changed := spec
	changed.Inputs = slices.Clone(spec.Inputs)
	changed.Inputs[1] = extra[1]
	cmd := &SubmitJobCommand{ID: "c", Spec: changed, Now: a.now}
	data, _ := Encode(cmd)
	r1, r2 := a.fsm.Apply(data), restored.Apply(data)
	if r1 != "c" || r2 != "c" {
		t.Fatalf("submit: %v / %v", r1, r2)
	}
	if restored.StateHash() != a.fsm.StateHash() {
		t.Fatal("state hashes differ after a submit with hits on both")
	}
	if q := a.queuedIndexes("c"); !slices.Equal(q, []int{1, 2}) {
		t.Fatalf("queued %v, want [1 2] (input 1 changed, task 2 failed)", q)
	}
}

// TestCache_KeyCollisionIsNoHit: a source filed under a new task's 8-byte
// key but of other content (as a collision would be) is not taken, by the
// fast path or the full hash.
func TestCache_KeyCollisionIsNoHit(t *testing.T) {
	a := newApplier(t)
	spec := cacheSpec(a.cacheInputs(2, ""))
	a.runAll("a", "", spec)
	other := spec
	other.Args = []string{"other", "{index}"}
	a.fsm.View(func(l *Ledger) {
		src := l.cache.entry(l.jobs["a"], 1)
		for i := range 2 { // file a/1 under other's keys: same index for task 1, another for task 0
			l.cache.index.put(cacheKey(tasks.ContentHash(&other, i), ""), src)
		}
		if hits := l.cacheHits(&other, ""); len(hits) != 0 {
			t.Fatalf("hits %+v for content no done task has", hits)
		}
	})
}

// TestCache_CollisionBesideTheTrueSourceServesTheTrueOne: an older job's
// task of other content filed under a key first (as a crafted 8-byte
// collision would put it), and the true source under the same key after
// it: a new job with the true content takes the true source's result, not
// the older job's that an unverified key would give.
func TestCache_CollisionBesideTheTrueSourceServesTheTrueOne(t *testing.T) {
	a := newApplier(t)
	inputs := a.cacheInputs(1, "")
	other := cacheSpec(inputs)
	other.Args = []string{"other", "{index}"}
	a.runAll("older", "", other) // stdout "out 0", of other content
	spec := cacheSpec(inputs)
	if err := a.submitAs("", "true", spec); err != nil {
		t.Fatal(err)
	}
	g := a.lease("w1", 1)
	a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: []api.Report{{TaskRef: g[0].Ref(),
		Result: tasks.Result{Stdout: []byte("the true result"), Duration: 7, Engine: "wazero"}}}})
	a.fsm.View(func(l *Ledger) {
		key := cacheKey(tasks.ContentHash(&spec, 0), "")
		l.cache.removeTask(key, l.jobs["true"], 0)
		l.cache.index.put(key, l.cache.entry(l.jobs["older"], 0)) // the collision
		l.cache.add(l.jobs["true"], 0)
		n := 0
		l.cache.index.each(key, func(cacheEntry) { n++ })
		if n != 2 {
			t.Fatalf("%d sources under the key, want 2", n)
		}
	})
	if err := a.submitAs("", "new", spec); err != nil {
		t.Fatal(err)
	}
	tt := &a.job("new").Tasks
	got := tt.at(0)
	if got.state() != tasks.TaskDone || string(tt.stdout(0)) != "the true result" {
		t.Fatalf("new task %+v, want done with the true source's result", tt.record(0))
	}
	if c := got.cached(); c == nil || c.Job != "true" || c.Index != 0 {
		t.Fatalf("cached from %+v, want true/0", c)
	}
}

// TestCache_RandomWalkAgreesAfterRestore drives a ledger through random
// submits of a few job variants (two owners, changed inputs, another
// seed, cache = false), leases, completions that succeed or fail, cancels
// and purges, takes a snapshot midway into a second ledger and applies the
// rest to both: every answer is the same, the cache index equals a scan
// of the done tasks after every step, and the state hashes agree at the
// end. It also wants hits to have happened, or it proved nothing.
func TestCache_RandomWalkAgreesAfterRestore(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 14))
		a := newApplier(t)
		base, alt := a.cacheInputs(4, ""), a.cacheInputs(4, "alt")
		var restored *FSM
		var grants []Grant
		var jobs []string
		for step := 0; step < 400; step++ {
			if step == 200 {
				restored = snapshotInto(t, a.fsm)
			}
			c := randomCacheStep(rng, a, base, alt, &grants, &jobs)
			data, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			r1 := a.fsm.Apply(data)
			if g, ok := r1.([]Grant); ok {
				grants = append(grants, g...)
			}
			if restored != nil {
				if r2 := restored.Apply(data); !sameResponse(r1, r2) {
					t.Fatalf("seed %d step %d: %T answers differ: %v vs %v", seed, step, c, r1, r2)
				}
			}
			a.checkIndexes()
		}
		if restored.StateHash() != a.fsm.StateHash() {
			t.Fatalf("seed %d: state hashes differ after the walk", seed)
		}
		hits := 0
		a.fsm.View(func(l *Ledger) {
			for _, j := range l.order {
				for i := 0; i < j.Tasks.len(); i++ {
					if j.Tasks.at(i).cached() != nil {
						hits++
					}
				}
			}
		})
		if hits == 0 {
			t.Fatalf("seed %d: no cache hit in the walk", seed)
		}
	}
}

func randomCacheStep(rng *rand.Rand, a *applier, base, alt []tasks.Input, grants *[]Grant, jobs *[]string) Command {
	switch k := rng.IntN(20); {
	case k < 4 || len(*jobs) == 0:
		spec := cacheSpec(slices.Clone(base))
		for i := range spec.Inputs {
			if rng.IntN(5) == 0 {
				spec.Inputs[i] = alt[i]
			}
		}
		spec.Seed = uint64(rng.IntN(2))
		spec.NoCache = rng.IntN(10) == 0
		id := fmt.Sprint("j", len(*jobs))
		*jobs = append(*jobs, id)
		return &SubmitJobCommand{ID: id, Spec: spec, Now: a.now, Owner: []string{"", "o1"}[rng.IntN(2)]}
	case k < 10 || len(*grants) == 0:
		return &LeaseTasksCommand{Worker: []string{"w1", "w2"}[rng.IntN(2)], Max: 1 + rng.IntN(4), Now: a.now, Slack: 1}
	case k < 17:
		i := rng.IntN(len(*grants))
		g := (*grants)[i]
		*grants = slices.Delete(*grants, i, i+1)
		kind := []string{"", "", "", "trap"}[rng.IntN(4)]
		w := "w1"
		if a.job(g.Job) != nil && a.job(g.Job).Tasks.at(g.Index).Worker == "w2" {
			w = "w2"
		}
		return &CompleteTasksCommand{Worker: w, Now: a.now, Reports: []api.Report{{TaskRef: g.Ref(),
			Result: tasks.Result{ErrorKind: kind, Stdout: []byte(fmt.Sprint(w, g.Job, g.Index)), Duration: time.Duration(rng.IntN(100))}}}}
	case k < 18:
		return &CancelJobCommand{ID: (*jobs)[rng.IntN(len(*jobs))], Now: a.now}
	default:
		return &PurgeJobCommand{ID: (*jobs)[rng.IntN(len(*jobs))]}
	}
}

// TestCache_GrantKeepsTheSeedItsAssignmentAndCacheKeyUse: a task's content
// is hashed once, at its first grant, and what is kept is what
// tasks.ContentHash says: the assignment's seed is tasks.Seed, the
// completion's result-cache key is cacheKey of the content hash (the
// owner's salt included), on the leader's ledger and on one restored from
// a snapshot (which keeps no seed and computes it again), and a resubmit
// still finds every result. A replica's grant keeps it too.
func TestCache_GrantKeepsTheSeedItsAssignmentAndCacheKeyUse(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2")
	spec := cacheSpec(a.cacheInputs(6, "seed"))
	spec.Env = map[string]string{"B": "2", "A": "1"}
	if err := a.submitAs("alice", "a", spec); err != nil {
		t.Fatal(err)
	}
	grants := a.lease("w1", 3) // half leased: the other half is granted after the restore
	a.checkSeeds("a", grants)
	for _, g := range grants {
		a.complete("w1", g, "")
	}
	a.checkIndexes()
	a.checkCacheKeys("a", "alice", grants)

	restored := &applier{t: t, fsm: snapshotInto(t, a.fsm), now: a.now}
	rest := restored.lease("w2", 3)
	restored.checkSeeds("a", rest)
	for _, g := range rest {
		restored.complete("w2", g, "")
	}
	restored.checkIndexes()
	restored.checkCacheKeys("a", "alice", append(grants, rest...))
	if err := restored.submitAs("alice", "b", spec); err != nil {
		t.Fatal(err)
	}
	if st := restored.job("b").state(); st != tasks.JobComplete {
		t.Fatalf("resubmit: %s, want every task from the cache", st)
	}

	restored.submitSpec("rep", replicaSpec(2, 2, 2, 2))
	restored.checkSeeds("rep", []Grant{restored.mustLease("w1"), restored.mustLease("w2")})
}

// checkSeeds checks that each grant's task keeps its tasks.Seed and that
// its assignment carries it.
func (a *applier) checkSeeds(id string, grants []Grant) {
	a.t.Helper()
	if len(grants) == 0 {
		a.t.Fatalf("job %s: nothing granted", id)
	}
	a.fsm.View(func(l *Ledger) {
		j := l.jobs[id]
		for _, g := range grants {
			want := tasks.Seed(&j.Spec, g.Index)
			if tk := j.Tasks.at(g.Index); tk.flags&hasSeed == 0 || tk.seed != want {
				a.t.Errorf("job %s task %d: kept seed %#x (kept: %v), want %#x", id, g.Index, tk.seed, tk.flags&hasSeed != 0, want)
			}
			if got := l.Assignment(g).Seed; got != want {
				a.t.Errorf("job %s task %d: assignment seed %#x, want %#x", id, g.Index, got, want)
			}
		}
	})
}

// checkCacheKeys checks that each granted task, now done, is in the result
// cache under cacheKey of its content hash and owner.
func (a *applier) checkCacheKeys(id, owner string, grants []Grant) {
	a.t.Helper()
	a.fsm.View(func(l *Ledger) {
		j := l.jobs[id]
		for _, g := range grants {
			key, found := cacheKey(tasks.ContentHash(&j.Spec, g.Index), owner), false
			l.cache.index.each(key, func(e cacheEntry) { found = found || l.cache.src(e) == cacheSrc{j: j, idx: int32(g.Index)} })
			if !found {
				a.t.Errorf("job %s task %d: not in the result cache under its content's key %#x", id, g.Index, key)
			}
		}
	})
}

// TestCache_WarmingBeforeCompletionsChangesNothing: the reads that warm
// the result cache's buckets before a batch of completions take reports
// of unknown jobs, indexes out of range and tasks never granted (no kept
// seed) without harm and change no state; the batch then applies as it
// would unwarmed.
func TestCache_WarmingBeforeCompletionsChangesNothing(t *testing.T) {
	a := newApplier(t)
	a.workers("w1")
	a.runAll("done", "", cacheSpec(a.cacheInputs(4, "warm"))) // the index has items
	a.submit("j", 4, 0, 0)
	var reports []api.Report
	for _, g := range a.lease("w1", 2) {
		reports = append(reports, api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte("ok")}})
	}
	reports = append(reports,
		api.Report{TaskRef: api.TaskRef{Job: "nope", Index: 0, Attempt: 1}},
		api.Report{TaskRef: api.TaskRef{Job: "j", Index: -1, Attempt: 1}},
		api.Report{TaskRef: api.TaskRef{Job: "j", Index: 4, Attempt: 1}},
		api.Report{TaskRef: api.TaskRef{Job: "j", Index: 3, Attempt: 1}}) // never granted
	before := a.fsm.StateHash()
	a.fsm.View(func(l *Ledger) { l.warmCache(reports) })
	if after := a.fsm.StateHash(); after != before {
		t.Fatalf("warming changed the state: %s, then %s", before, after)
	}
	ok, _ := a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: reports}).([]bool)
	if want := []bool{true, true, false, false, false, false}; !slices.Equal(ok, want) {
		t.Fatalf("accepted %v, want %v", ok, want)
	}
	a.checkIndexes()
	a.checkCacheKeys("j", "", []Grant{{Job: "j", Index: 0}, {Job: "j", Index: 1}})
}
