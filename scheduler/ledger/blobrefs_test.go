package ledger

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// checkRefs fails unless the derived counts equal the full scan, and
// garbage agrees with the scan on which blobs are unreferenced.
func checkRefs(t *testing.T, f *FSM, step string) {
	t.Helper()
	f.View(func(l *Ledger) {
		want := l.scanRefs()
		if !maps.Equal(map[string]int(l.refs), want) {
			t.Fatalf("%s: derived refs %v, full scan %v", step, l.refs, want)
		}
		if err := l.CheckIndexes(); err != nil { // the result cache among them
			t.Fatalf("%s: %v", step, err)
		}
		for _, h := range l.Garbage(1 << 62) {
			if want[h] > 0 {
				t.Fatalf("%s: garbage names %s, referenced %d times", step, h, want[h])
			}
		}
	})
}

// refsModel drives an FSM with random commands that touch blob references.
type refsModel struct {
	a       *applier
	rng     *rand.Rand
	pool    []string // blob hashes, some inline, some erasure-coded
	jobs    []string
	grants  []heldGrant // every grant seen, current or stale
	workers []string
}

type heldGrant struct {
	Grant
	worker string
}

// TestBlobRefs_MatchFullScanProperty applies random sequences of submits
// (with modules and inputs from a small blob pool), leases, completions
// with and without result blobs (current, stale, from the wrong worker),
// failures and retries, expiries, releases, cancels, purges, blob puts,
// unpins and deletes, with a snapshot and restore midway, and after every
// step wants the derived reference counts to equal a full scan.
func TestBlobRefs_MatchFullScanProperty(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		m := &refsModel{a: newApplier(t), rng: rand.New(rand.NewPCG(seed, 11)), workers: []string{"w1", "w2", "w3"}}
		m.pool = append(m.pool, storage.Hash(testModule))
		for _, w := range m.workers {
			m.a.apply(&UpsertPeerCommand{ID: w, Roles: []string{"worker"}, State: "alive", Cores: 2})
		}
		for step := range 400 {
			if step == 200 {
				m.a.fsm = snapshotInto(t, m.a.fsm)
			}
			what := m.step()
			checkRefs(t, m.a.fsm, fmt.Sprintf("seed %d step %d (%s)", seed, step, what))
		}
	}
}

// step applies one random command and names it.
func (m *refsModel) step() string {
	m.a.now += int64(time.Millisecond)
	switch k := m.rng.IntN(20); {
	case k < 2 || len(m.pool) < 3:
		return m.putBlob()
	case k < 4 || len(m.jobs) == 0:
		return m.submit()
	case k < 8:
		return m.lease()
	case k < 13 && len(m.grants) > 0:
		return m.complete()
	case k == 13 && len(m.grants) > 0:
		g := m.pick()
		m.a.apply(&ExpireLeasesCommand{Now: m.a.now, Reason: "r", Tasks: []api.TaskRef{g.ref()}})
		return "expire"
	case k == 14 && len(m.grants) > 0:
		g := m.pick()
		m.a.apply(&ReleaseTasksCommand{Worker: g.worker, Now: m.a.now, Tasks: []api.TaskRef{g.ref()}})
		return "release"
	case k == 15:
		m.a.apply(&CancelJobCommand{ID: m.job(), Now: m.a.now})
		return "cancel"
	case k == 16:
		m.a.apply(&PurgeJobCommand{ID: m.job()})
		return "purge"
	case k == 17:
		m.a.apply(&UnpinBlobCommand{Hash: m.blob()})
		return "unpin"
	default:
		return m.deleteBlobs()
	}
}

func (m *refsModel) pick() heldGrant { return m.grants[m.rng.IntN(len(m.grants))] }
func (m *refsModel) job() string     { return m.jobs[m.rng.IntN(len(m.jobs))] }
func (m *refsModel) blob() string    { return m.pool[m.rng.IntN(len(m.pool))] }
func (m *refsModel) worker() string  { return m.workers[m.rng.IntN(len(m.workers))] }
func (g heldGrant) ref() api.TaskRef {
	return api.TaskRef{Job: g.Job, Index: g.Index, Attempt: g.Attempt}
}
func (m *refsModel) chance(n int) bool { return m.rng.IntN(n) == 0 }

// putBlob adds a blob to the pool, inline or as a manifest, maybe pinned.
func (m *refsModel) putBlob() string {
	n := len(m.pool)
	pin := m.chance(4)
	if m.chance(2) {
		data := fmt.Appendf(nil, "blob %d", n)
		m.a.apply(&PutBlobCommand{Hash: storage.Hash(data), Data: data, Now: m.a.now, Pin: pin})
		m.pool = append(m.pool, storage.Hash(data))
		return "put-blob"
	}
	man := storagetest.RandomManifest(m.rng, n, benchPeers, 0)
	m.a.apply(&PutManifestCommand{Manifest: man, Now: m.a.now, Pin: pin})
	m.pool = append(m.pool, man.Hash)
	return "put-manifest"
}

// submit submits a job whose module and inputs come from the pool (possibly
// deleted by now, so the submit may be refused), inputs possibly repeated.
func (m *refsModel) submit() string {
	id := fmt.Sprintf("j%d", len(m.jobs))
	n := 1 + m.rng.IntN(6)
	spec := tasks.JobSpec{Name: "same", ModuleHash: m.blob(), Tasks: n, // one name: resubmits hit the cache Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1 << 10, Retries: m.rng.IntN(3)}
	if m.chance(2) {
		for i := range n {
			spec.Inputs = append(spec.Inputs, tasks.Input{Name: fmt.Sprint(i), Hash: m.blob()})
		}
	}
	m.a.apply(&SubmitJobCommand{ID: id, Spec: spec, Now: m.a.now})
	m.jobs = append(m.jobs, id)
	return "submit"
}

func (m *refsModel) lease() string {
	w := m.worker()
	for _, g := range m.a.lease(w, 1+m.rng.IntN(4)) {
		m.grants = append(m.grants, heldGrant{g, w})
	}
	return "lease"
}

// complete reports on a grant, usually by its worker, maybe stale; it
// succeeds or fails, with a result blob from the pool or none.
func (m *refsModel) complete() string {
	g := m.pick()
	w := g.worker
	if m.chance(8) {
		w = m.worker()
	}
	r := api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(w)}}
	if m.chance(3) {
		r.ErrorKind = "trap"
	}
	if !m.chance(3) {
		r.StdoutBlob = m.blob()
	}
	m.a.apply(&CompleteTasksCommand{Worker: w, Now: m.a.now, Reports: []api.Report{r}})
	return "complete"
}

// deleteBlobs asks to delete a random few pool blobs, as the collector
// would after a racing submit or completion; Apply must keep the used ones.
func (m *refsModel) deleteBlobs() string {
	var hashes []string
	for range 1 + m.rng.IntN(4) {
		hashes = append(hashes, m.blob())
	}
	var used map[string]int
	m.a.fsm.View(func(l *Ledger) { used = l.scanRefs() })
	deleted, _ := m.a.apply(&DeleteBlobsCommand{Hashes: hashes}).([]string)
	for _, h := range deleted {
		if used[h] > 0 {
			m.a.t.Fatalf("deleted %s, referenced %d times", h, used[h])
		}
	}
	return "delete-blobs"
}

// TestBlobRefs_ResultBlobKeptUntilPurge: a task's coded result blob is not
// garbage while its job is in the ledger, even a failed attempt's; a
// retry's result replaces it (so it becomes garbage); purging frees the rest.
func TestBlobRefs_ResultBlobKeptUntilPurge(t *testing.T) {
	a := newApplier(t)
	r := rand.New(rand.NewPCG(1, 1))
	first, second := storagetest.RandomManifest(r, 1, benchPeers, 0), storagetest.RandomManifest(r, 2, benchPeers, 0)
	for _, man := range []*storage.Manifest{first, second} {
		a.apply(&PutManifestCommand{Manifest: man, Now: 10})
	}
	a.submit("j", 1, 1, 0)
	report := func(g Grant, kind, blob string) {
		a.apply(&CompleteTasksCommand{Worker: "w", Now: 20, Reports: []api.Report{{
			TaskRef: g.Ref(), Result: tasks.Result{ErrorKind: kind, StdoutBlob: blob}}}})
	}
	garbage := func() (g []string) {
		a.fsm.View(func(l *Ledger) { g = l.Garbage(100) })
		return g
	}
	report(a.lease("w", 1)[0], "trap", first.Hash)
	if g := garbage(); !slices.Equal(g, []string{second.Hash}) {
		t.Fatalf("garbage %v, want only the unused %s: the failed attempt's result is the task's", g, second.Hash)
	}
	report(a.lease("w", 1)[0], "", second.Hash)
	if g := garbage(); !slices.Equal(g, []string{first.Hash}) {
		t.Fatalf("garbage %v, want the replaced result %s", g, first.Hash)
	}
	if resp := a.apply(&PurgeJobCommand{ID: "j"}); resp != nil {
		t.Fatal(resp)
	}
	want := []string{first.Hash, second.Hash, storage.Hash(testModule)}
	slices.Sort(want)
	if g := garbage(); !slices.Equal(g, want) {
		t.Fatalf("after purge: garbage %v, want %v", g, want)
	}
}
