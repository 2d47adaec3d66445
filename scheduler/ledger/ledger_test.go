package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

var testModule = append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, "test module"...)

// applier drives an FSM through encoded commands, as Raft would.
type applier struct {
	t     *testing.T
	fsm   *FSM
	index uint64
	now   int64
}

func newApplier(t *testing.T) *applier {
	a := &applier{t: t, fsm: NewFSM(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	a.apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	return a
}

func (a *applier) apply(c Command) any {
	a.t.Helper()
	data, err := Encode(c)
	if err != nil {
		a.t.Fatal(err)
	}
	a.index++
	return a.fsm.Apply(data)
}

func (a *applier) submit(id string, n, retries, priority int) {
	a.t.Helper()
	spec := tasks.JobSpec{Name: id, ModuleHash: storage.Hash(testModule), Tasks: n, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1 << 10, Retries: retries, Priority: priority}
	if resp := a.apply(&SubmitJobCommand{ID: id, Spec: spec, Now: a.now}); resp != id {
		a.t.Fatalf("submit %s: %v", id, resp)
	}
}

func (a *applier) lease(worker string, max int) []Grant {
	a.t.Helper()
	g, _ := a.apply(&LeaseTasksCommand{Worker: worker, Max: max, Now: a.now, Slack: int64(time.Second)}).([]Grant)
	return g
}

func (a *applier) complete(worker string, g Grant, errKind string) bool {
	a.t.Helper()
	resp := a.apply(&CompleteTasksCommand{Worker: worker, Now: a.now, Reports: []api.Report{{
		TaskRef: g.Ref(), Result: tasks.Result{ErrorKind: errKind, Stdout: []byte(worker)},
	}}})
	return resp.([]bool)[0]
}

func (a *applier) job(id string) *job {
	var j *job
	a.fsm.View(func(l *Ledger) { j = l.jobs[id] })
	return j
}

func TestLedger_TaskLifeQueuedLeasedDone(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 3, 0, 0)
	grants := a.lease("w1", 10)
	if len(grants) != 3 {
		t.Fatalf("granted %d tasks, want 3", len(grants))
	}
	for i, g := range grants {
		if g.Index != i || g.Attempt != 1 {
			t.Fatalf("grant %d = %+v, want index %d attempt 1", i, g, i)
		}
		if !a.complete("w1", g, "") {
			t.Fatalf("completion of %+v refused", g)
		}
	}
	j := a.job("j1")
	if j.state() != tasks.JobComplete || j.nDone != 3 || j.nLeased != 0 {
		t.Fatalf("job state %s done %d leased %d", j.state(), j.nDone, j.nLeased)
	}
	if got := string(j.Tasks.stdout(2)); got != "w1" {
		t.Fatalf("stdout %q", got)
	}
}

func TestLedger_LateCompletionIsIgnored(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 3, 0)
	first := a.lease("w1", 1)[0]
	a.apply(&ExpireLeasesCommand{Now: a.now, Reason: "test", Tasks: []api.TaskRef{{Job: "j1", Index: 0, Attempt: first.Attempt}}})
	second := a.lease("w2", 1)[0]
	if second.Attempt != 2 {
		t.Fatalf("re-lease attempt %d, want 2", second.Attempt)
	}
	if a.complete("w1", first, "") {
		t.Fatal("late completion from the expired lease was accepted")
	}
	if !a.complete("w2", second, "") {
		t.Fatal("current lease's completion was refused")
	}
	if a.complete("w2", second, "trap") {
		t.Fatal("a different outcome for an attempt already done was accepted")
	}
	j := a.job("j1")
	if j.nDone != 1 || j.Tasks.at(0).lateCount() != 2 || string(j.Tasks.stdout(0)) != "w2" || j.Tasks.at(0).errorKind() != "" {
		t.Fatalf("done %d late %d stdout %q kind %q", j.nDone, j.Tasks.at(0).lateCount(), j.Tasks.stdout(0), j.Tasks.at(0).errorKind())
	}
}

// TestLedger_RepeatedReportIsAcceptedAndChangesNothing: a worker whose
// report's answer was lost sends it again (to another server, after a
// leader change); the repeat is accepted, and nothing is counted twice.
func TestLedger_RepeatedReportIsAcceptedAndChangesNothing(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive", Now: 1})
	a.submit("j1", 2, 1, 0)
	g := a.lease("w1", 2)
	for _, kind := range []string{"", "trap"} {
		gr := g[0]
		if kind != "" {
			gr = g[1]
		}
		before := a.fsm.StateHash()
		if !a.complete("w1", gr, kind) {
			t.Fatalf("report %q refused", kind)
		}
		after := a.fsm.StateHash()
		if before == after {
			t.Fatalf("report %q changed nothing", kind)
		}
		if !a.complete("w1", gr, kind) {
			t.Fatalf("the repeat of report %q was refused", kind)
		}
		if a.fsm.StateHash() != after {
			t.Fatalf("the repeat of report %q changed the ledger", kind)
		}
	}
	var done, failed int
	a.fsm.View(func(l *Ledger) { p, _ := l.Peer("w1"); done, failed = p.Done, p.Failed })
	if j := a.job("j1"); done != 1 || failed != 1 || j.nDone != 1 || j.Tasks.at(1).state() != tasks.TaskQueued || j.Tasks.at(1).lateCount() != 0 {
		t.Fatalf("peer done %d failed %d, job done %d, failed task %s late %d", done, failed, j.nDone, j.Tasks.at(1).state(), j.Tasks.at(1).lateCount())
	}
}

func TestLedger_FailedTaskRetriesThenFails(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 2, 0)
	for attempt := 1; attempt <= 3; attempt++ {
		g := a.lease("w1", 1)
		if len(g) != 1 || g[0].Attempt != attempt {
			t.Fatalf("attempt %d: grants %+v", attempt, g)
		}
		a.complete("w1", g[0], "trap")
	}
	if g := a.lease("w1", 1); len(g) != 0 {
		t.Fatalf("a task past its retries was leased again: %+v", g)
	}
	j := a.job("j1")
	if j.state() != tasks.JobFailed || j.Tasks.at(0).state() != tasks.TaskFailed || j.Tasks.at(0).errorKind() != "trap" {
		t.Fatalf("job %s task %+v", j.state(), j.Tasks.at(0))
	}
}

func TestLedger_ReleasedTaskRequeuesWithoutCountingAttempt(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 0, 0)
	g := a.lease("w1", 1)[0]
	n := a.apply(&ReleaseTasksCommand{Worker: "w1", Now: a.now, Tasks: []api.TaskRef{{Job: "j1", Index: 0, Attempt: g.Attempt}}})
	if n != 1 {
		t.Fatalf("released %v, want 1", n)
	}
	again := a.lease("w2", 1)
	if len(again) != 1 || again[0].Attempt != 1 {
		t.Fatalf("after release: %+v, want attempt 1 again", again)
	}
}

func TestLedger_PriorityThenFairShare(t *testing.T) {
	a := newApplier(t)
	a.submit("big", 1000, 0, 0)
	a.lease("w1", 8) // the big job is running
	a.submit("small", 4, 0, 0)
	a.submit("urgent", 2, 0, 5)
	g := a.lease("w2", 2)
	if g[0].Job != "urgent" || g[1].Job != "urgent" {
		t.Fatalf("higher priority not first: %+v", g)
	}
	g = a.lease("w2", 4)
	for _, x := range g {
		if x.Job != "small" {
			t.Fatalf("small job submitted after a big one did not get the free slots: %+v", g)
		}
	}
}

func TestLedger_CancelFailsUnfinishedTasks(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 3, 0, 0)
	g := a.lease("w1", 2)
	a.complete("w1", g[0], "")
	if resp := a.apply(&CancelJobCommand{ID: "j1", Now: a.now}); resp != nil {
		t.Fatalf("cancel: %v", resp)
	}
	j := a.job("j1")
	if j.state() != tasks.JobCancelled || j.nDone != 1 || j.nFailed != 2 || j.nLeased != 0 || j.nQueued != 0 {
		t.Fatalf("after cancel: %s done %d failed %d leased %d queued %d", j.state(), j.nDone, j.nFailed, j.nLeased, j.nQueued)
	}
	if a.complete("w1", g[1], "") {
		t.Fatal("report for a cancelled task was accepted")
	}
	if resp, _ := a.apply(&CancelJobCommand{ID: "j1"}).(error); !errors.Is(resp, ErrJobFinished) {
		t.Fatalf("second cancel: %v", resp)
	}
}

func TestLedger_RuleViolationsChangeNothing(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 0, 0)
	before := a.fsm.StateHash()
	spec := tasks.JobSpec{Name: "x", ModuleHash: strings.Repeat("0", 64), Tasks: 1, Timeout: time.Second, Memory: tasks.MinMemory, MaxOutput: 1}
	if err, _ := a.apply(&SubmitJobCommand{ID: "j2", Spec: spec}).(error); !errors.Is(err, ErrBlobMissing) {
		t.Fatalf("missing module: %v", err)
	}
	if err, _ := a.apply(&SubmitJobCommand{ID: "j1", Spec: spec}).(error); !errors.Is(err, ErrJobExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	if a.fsm.StateHash() != before {
		t.Fatal("a refused command changed the ledger")
	}
}

func TestFSM_BatchAppliesEachCommand(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 2, 0, 0)
	c1, _ := Encode(&LeaseTasksCommand{Worker: "w1", Max: 1})
	c2, _ := Encode(&LeaseTasksCommand{Worker: "w2", Max: 1})
	resp := a.fsm.Apply(EncodeBatch([][]byte{c1, c2})).([]any)
	g1, g2 := resp[0].([]Grant), resp[1].([]Grant)
	if len(g1) != 1 || len(g2) != 1 || g1[0].Index == g2[0].Index {
		t.Fatalf("batch grants %+v %+v", g1, g2)
	}
}

func TestFSM_CorruptEntryPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a corrupt command did not stop the FSM")
		}
	}()
	NewFSM().Apply([]byte{byte(cmdSubmitJobV1), '{', 'x'})
}

// TestFSM_SnapshotRestoreProperty applies a random command sequence to one
// FSM, snapshots it midway into a second FSM, applies the rest to both, and
// wants identical state hashes.
func TestFSM_SnapshotRestoreProperty(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		a := newApplier(t)
		cmds := randomCommands(rng, 300)
		half := len(cmds) / 2
		for _, c := range cmds[:half] {
			a.fsm.Apply(c)
		}
		restored := snapshotInto(t, a.fsm)
		if restored.StateHash() != a.fsm.StateHash() {
			t.Fatalf("seed %d: restored state differs right after restore", seed)
		}
		for _, c := range cmds[half:] {
			r1, r2 := a.fsm.Apply(c), restored.Apply(c)
			if !sameResponse(r1, r2) {
				t.Fatalf("seed %d: responses differ: %v vs %v", seed, r1, r2)
			}
		}
		if restored.StateHash() != a.fsm.StateHash() {
			t.Fatalf("seed %d: state hashes differ after the rest of the log", seed)
		}
	}
}

func sameResponse(a, b any) bool {
	ea, _ := a.(error)
	eb, _ := b.(error)
	if ea != nil || eb != nil {
		return ea != nil && eb != nil && ea.Error() == eb.Error()
	}
	return bytes.Equal(mustJSON(a), mustJSON(b))
}

func snapshotInto(t *testing.T, f *FSM) *FSM {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return g
}

func randomCommands(rng *rand.Rand, n int) [][]byte {
	var logs [][]byte
	var jobs []string
	now := int64(1e18)
	workers := []string{"w1", "w2", "w3"}
	add := func(c Command) {
		data, _ := Encode(c)
		logs = append(logs, data)
	}
	var grants []api.TaskRef
	for len(logs) < n {
		now += int64(rng.IntN(1000))
		w := workers[rng.IntN(len(workers))]
		switch k := rng.IntN(10); {
		case k == 0 || len(jobs) == 0:
			id := "j" + string(rune('a'+len(jobs)))
			jobs = append(jobs, id)
			add(&SubmitJobCommand{ID: id, Now: now, RequestID: fmt.Sprint("r", rng.IntN(8)), Owner: fmt.Sprint("o", rng.IntN(3)), Spec: tasks.JobSpec{Name: fmt.Sprint("n", rng.IntN(2)), ModuleHash: storage.Hash(testModule),
				Tasks: 1 + rng.IntN(20), Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: rng.IntN(3), Priority: rng.IntN(2)}})
		case k <= 3:
			add(&LeaseTasksCommand{Worker: w, Max: 1 + rng.IntN(4), Now: now, Slack: 1000})
			// Guess the grants: refs that may or may not be current; the FSM decides.
			j := jobs[rng.IntN(len(jobs))]
			grants = append(grants, api.TaskRef{Job: j, Index: rng.IntN(20), Attempt: 1 + rng.IntN(2)})
		case k <= 6 && len(grants) > 0:
			g := grants[rng.IntN(len(grants))]
			kind := []string{"", "", "trap", "timeout"}[rng.IntN(4)]
			add(&CompleteTasksCommand{Worker: w, Now: now, Reports: []api.Report{{TaskRef: g, Result: tasks.Result{ErrorKind: kind, Stdout: []byte{byte(rng.IntN(256))},
				Duration: time.Duration(rng.IntN(1000))}}}})
		case k == 7 && len(grants) > 0:
			g := grants[rng.IntN(len(grants))]
			if rng.IntN(2) == 0 {
				add(&RenewLeasesCommand{Worker: w, Now: now, Slack: 1000, Tasks: []api.TaskRef{g}})
				break
			}
			add(&ExpireLeasesCommand{Now: now, Reason: "r", Tasks: []api.TaskRef{g}})
		case k == 8:
			add(&UpsertPeerCommand{ID: w, State: []string{"alive", "down"}[rng.IntN(2)], Cores: 2, Now: now})
		default:
			switch rng.IntN(8) {
			case 0:
				add(&CancelJobCommand{ID: jobs[rng.IntN(len(jobs))], Now: now})
			case 1:
				c := fmt.Sprint("c", rng.IntN(6))
				add(&CreateCredentialCommand{Credential: Credential{ID: c, Role: []string{api.CredWorker, api.CredOperator}[rng.IntN(2)],
					Hash: "h" + c, Uses: rng.IntN(3) - 1}, Now: now})
			case 2:
				add(&RevokeCredentialCommand{ID: fmt.Sprint("c", rng.IntN(6)), Now: now})
			case 3:
				p := fmt.Sprint("p", rng.IntN(6))
				add(&JoinWorkerCommand{Token: fmt.Sprint("c", rng.IntN(6)), Peer: Credential{ID: p, Role: api.CredPeer, Hash: "h" + p, Peer: w}, Now: now})
			case 4:
				// Draws nothing from rng, so the log's other commands are
				// those of the generator before this case existed
				// (TestReplicas_OldLogReplaysUnchanged filters these out).
				add(&SetModuleEngineCommand{Module: storage.Hash(testModule), Engine: []string{"wazero", "wasmtime", "auto"}[len(logs)%3]})
			}
		}
	}
	return logs
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestFSM_SnapshotSharesTasksCopyOnWrite: a snapshot taken before more
// commands are applied still streams the state as of the snapshot, and it
// did not copy the task table to get it.
func TestFSM_SnapshotSharesTasksCopyOnWrite(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 3*chunkSize, 0, 0)
	wantHash := a.fsm.StateHash()
	frozen := a.fsm.Snapshot()
	live := a.job("j1")
	for i, c := range frozen.jobs[0].tasks.chunks {
		if c != live.Tasks.chunks[i] {
			t.Fatalf("snapshot copied chunk %d", i)
		}
	}
	a.lease("w1", 10) // touches only the first chunk
	if frozen.jobs[0].tasks.chunks[0] == live.Tasks.chunks[0] || frozen.jobs[0].tasks.chunks[1] != live.Tasks.chunks[1] {
		t.Fatal("a change did not copy exactly the chunk it touched")
	}
	var buf bytes.Buffer
	if err := frozen.Write(&buf); err != nil {
		t.Fatal(err)
	}
	restored := NewFSM()
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if restored.StateHash() != wantHash {
		t.Fatal("the snapshot saw changes applied after it was taken")
	}
}

func TestLedger_RetryGoesToAnotherWorkerWhereOneExists(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive"})
	a.submit("alone", 1, 3, 0)
	a.complete("w1", a.lease("w1", 1)[0], "trap")
	if again := a.lease("w1", 1); len(again) != 1 || again[0].Attempt != 2 {
		t.Fatalf("the only worker should retry the task itself: %+v", again)
	}

	a.apply(&UpsertPeerCommand{ID: "w2", Roles: []string{"worker"}, State: "alive"})
	a.submit("pair", 1, 3, 0)
	g := a.lease("w2", 1)[0]
	if g.Job != "pair" {
		t.Fatalf("got %+v", g)
	}
	a.complete("w2", g, "timeout")
	if again := a.lease("w2", 1); len(again) != 0 {
		t.Fatalf("w2 was given back the task that just failed on it: %+v", again)
	}
	if other := a.lease("w1", 1); len(other) != 1 || other[0].Job != "pair" || other[0].Attempt != 2 {
		t.Fatalf("the retry did not go to the other worker: %+v", other)
	}
}

func TestLedger_JobNeedingAnEngineGoesOnlyToWorkersWithIt(t *testing.T) {
	a := newApplier(t)
	spec := tasks.JobSpec{Name: "fast", ModuleHash: storage.Hash(testModule), Tasks: 2, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1, Engine: tasks.EngineWasmer}
	if resp := a.apply(&SubmitJobCommand{ID: "fast", Spec: spec}); resp != "fast" {
		t.Fatal(resp)
	}
	a.submit("any", 1, 0, 0)
	g, _ := a.apply(&LeaseTasksCommand{Worker: "w1", Max: 5, Engines: []string{"wazero"}}).([]Grant)
	if len(g) != 1 || g[0].Job != "any" {
		t.Fatalf("a wazero-only worker got %+v, want only the job that runs anywhere", g)
	}
	g, _ = a.apply(&LeaseTasksCommand{Worker: "w2", Max: 5, Engines: []string{"wazero", "wasmer"}}).([]Grant)
	if len(g) != 2 || g[0].Job != "fast" {
		t.Fatalf("a worker with wasmer got %+v", g)
	}
}

func TestLedger_PurgeAndGarbageCollection(t *testing.T) {
	a := newApplier(t)
	input := []byte("input bytes")
	a.apply(&PutBlobCommand{Hash: storage.Hash(input), Data: input, Now: 10})
	kept := []byte("pinned by a user")
	a.apply(&PutBlobCommand{Hash: storage.Hash(kept), Data: kept, Now: 10, Pin: true})
	spec := tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule), Tasks: 1, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1, Inputs: []tasks.Input{{Name: "in", Hash: storage.Hash(input)}}}
	if resp := a.apply(&SubmitJobCommand{ID: "j1", Spec: spec}); resp != "j1" {
		t.Fatal(resp)
	}
	if err, _ := a.apply(&PurgeJobCommand{ID: "j1"}).(error); !errors.Is(err, ErrJobNotFinished) {
		t.Fatalf("purging a queued job: %v", err)
	}
	var garbage []string
	a.fsm.View(func(l *Ledger) { garbage = l.Garbage(100) })
	if len(garbage) != 0 {
		t.Fatalf("garbage %v while the job uses its blobs", garbage)
	}
	if deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: []string{storage.Hash(input), storage.Hash(kept)}}).([]string); len(deleted) != 0 {
		t.Fatalf("deleted %v: a used and a pinned blob must stay", deleted)
	}
	a.complete("w", a.lease("w", 1)[0], "")
	if resp := a.apply(&PurgeJobCommand{ID: "j1"}); resp != nil {
		t.Fatalf("purge: %v", resp)
	}
	a.fsm.View(func(l *Ledger) { garbage = l.Garbage(100) })
	want := []string{storage.Hash(input), storage.Hash(testModule)}
	slices.Sort(want)
	if !slices.Equal(garbage, want) {
		t.Fatalf("garbage %v, want the purged job's input and module %v", garbage, want)
	}
	deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: append(garbage, storage.Hash(kept))}).([]string)
	if !slices.Equal(deleted, garbage) {
		t.Fatalf("deleted %v, want %v", deleted, garbage)
	}
	a.apply(&UnpinBlobCommand{Hash: storage.Hash(kept)})
	a.fsm.View(func(l *Ledger) { garbage = l.Garbage(100) })
	if len(garbage) != 1 || garbage[0] != storage.Hash(kept) {
		t.Fatalf("after unpin: garbage %v", garbage)
	}
}

// TestLedger_ErasureCodedModuleIsAJobReference: a module stored erasure-coded
// (a manifest, no inline bytes) may be a job's module, and garbage collection
// keeps it, and its shards, exactly as long as an inline module: while a job
// uses it.
func TestLedger_ErasureCodedModuleIsAJobReference(t *testing.T) {
	a := newApplier(t)
	h := func(c string) string { return strings.Repeat(c, 64) }
	placed := []storage.Shard{{Hash: h("1"), Peer: "p0"}, {Hash: h("2"), Peer: "p1"}, {Hash: h("3"), Peer: "p2"}}
	mod := &storage.Manifest{Version: storage.ManifestVersion, Hash: h("a"), Size: 100, SegmentSize: 100, K: 2, M: 1,
		Segments: []storage.Segment{{Hash: storage.SegmentHash(2, 100, placed), Shards: placed}}}
	if err := mod.Validate(); err != nil {
		t.Fatal(err)
	}
	a.apply(&PutManifestCommand{Manifest: mod, Now: 10})
	spec := tasks.JobSpec{Name: "j", ModuleHash: mod.Hash, Tasks: 1, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1}
	if resp := a.apply(&SubmitJobCommand{ID: "j1", Spec: spec}); resp != "j1" {
		t.Fatalf("submit with an erasure-coded module: %v", resp)
	}
	var garbage []string
	a.fsm.View(func(l *Ledger) { garbage = l.Garbage(100) })
	if slices.Contains(garbage, mod.Hash) {
		t.Fatalf("garbage %v names the module a job uses", garbage)
	}
	if deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: []string{mod.Hash}}).([]string); len(deleted) != 0 {
		t.Fatalf("deleted %v: the module of a job must stay", deleted)
	}
	a.complete("w", a.lease("w", 1)[0], "")
	if resp := a.apply(&PurgeJobCommand{ID: "j1"}); resp != nil {
		t.Fatalf("purge: %v", resp)
	}
	a.fsm.View(func(l *Ledger) { garbage = l.Garbage(100) })
	if !slices.Contains(garbage, mod.Hash) {
		t.Fatalf("garbage %v: the purged job's erasure-coded module is not in it", garbage)
	}
	deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: []string{mod.Hash}}).([]string)
	if !slices.Equal(deleted, []string{mod.Hash}) {
		t.Fatalf("deleted %v, want the module", deleted)
	}
	var shards []ShardAt
	a.fsm.View(func(l *Ledger) {
		if l.HasBlob(mod.Hash) {
			t.Error("the module's manifest is still in the ledger")
		}
		shards = l.UnusedShards(deleted, map[string]*storage.Manifest{mod.Hash: mod})
	})
	if len(shards) != 3 {
		t.Fatalf("shards to delete from the peers: %v, want the module's 3", shards)
	}
}

// TestLedger_RepeatedSubmitReturnsTheSameJob: a submit carrying a request
// id an earlier submit used creates no second job and answers with the
// first one's id, also after a snapshot restore; the same id with another
// spec is refused; purging the job frees the id.
func TestLedger_RepeatedSubmitReturnsTheSameJob(t *testing.T) {
	a := newApplier(t)
	spec := tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule), Tasks: 1, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}
	if id := a.apply(&SubmitJobCommand{ID: "j-1", Spec: spec, Now: 1, RequestID: "r1"}); id != "j-1" {
		t.Fatalf("first submit: %v", id)
	}
	if id := a.apply(&SubmitJobCommand{ID: "j-2", Spec: spec, Now: 2, RequestID: "r1"}); id != "j-1" {
		t.Fatalf("repeated submit: %v, want j-1", id)
	}
	other := spec
	other.Tasks = 2
	if err, _ := a.apply(&SubmitJobCommand{ID: "j-3", Spec: other, Now: 3, RequestID: "r1"}).(error); !errors.Is(err, ErrRequestReused) {
		t.Fatalf("request id reused with another spec: %v", err)
	}
	restored := snapshotInto(t, a.fsm)
	var n int
	restored.View(func(l *Ledger) { n = l.JobCount(); checkIndexes(t, l) })
	if n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
	data, _ := Encode(&SubmitJobCommand{ID: "j-4", Spec: spec, Now: 4, RequestID: "r1"})
	if id := restored.Apply(data); id != "j-1" {
		t.Fatalf("repeat after restore: %v", id)
	}
	a.apply(&CancelJobCommand{ID: "j-1", Now: 5})
	a.apply(&PurgeJobCommand{ID: "j-1"})
	if id := a.apply(&SubmitJobCommand{ID: "j-5", Spec: other, Now: 6, RequestID: "r1"}); id != "j-5" {
		t.Fatalf("submit after the purge: %v", id)
	}
}

// TestLedger_HeartbeatingPeersAreTheLiveWorkersAndStoragePeers: the
// leader's liveness loop watches exactly the peers not down that should
// heartbeat; a plain server and a peer marked down are left out.
func TestLedger_HeartbeatingPeersAreTheLiveWorkersAndStoragePeers(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive", Now: 1})
	a.apply(&UpsertPeerCommand{ID: "s1", Roles: []string{"storage"}, State: "alive", Now: 1})
	a.apply(&UpsertPeerCommand{ID: "w2", Roles: []string{"worker"}, State: "draining", Now: 1})
	a.apply(&UpsertPeerCommand{ID: "w3", Roles: []string{"worker"}, State: "alive", Now: 1})
	a.apply(&UpsertPeerCommand{ID: "w3", State: "down", Now: 2})
	a.apply(&UpsertPeerCommand{ID: "srv", Roles: []string{"server"}, State: "alive", Now: 1})
	var got []string
	a.fsm.View(func(l *Ledger) { got = l.HeartbeatingPeers() })
	slices.Sort(got)
	if want := []string{"s1", "w1", "w2"}; !slices.Equal(got, want) {
		t.Fatalf("heartbeating peers %v, want %v", got, want)
	}
}

// TestFSM_ChangesRiseWithEveryApplyAndRestore: a reader that keeps what
// it derived while Changes stands still (a worker stream's credential
// check) sees every change, whether an applied command or a restored
// snapshot brings it.
func TestFSM_ChangesRiseWithEveryApplyAndRestore(t *testing.T) {
	a := newApplier(t)
	c0 := a.fsm.Changes()
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive", Now: 1})
	if c1 := a.fsm.Changes(); c1 != c0+1 {
		t.Fatalf("after an Apply Changes %d, want %d", c1, c0+1)
	}
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	c2 := a.fsm.Changes()
	if err := a.fsm.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if c3 := a.fsm.Changes(); c3 != c2+1 {
		t.Fatalf("after a Restore Changes %d, want %d", c3, c2+1)
	}
}

// TestFSM_CredentialChangesMoveWithEveryCredentialChangeOnly: a worker
// stream keeps its credential check while CredentialChanges stands still,
// so it must move when a credential is created, revoked or a join token
// used, and when a snapshot is restored; commands that leave credentials
// alone (a peer's upsert, a failed revocation, a second revocation) must
// not move it, or every lease's commit would force a check.
func TestFSM_CredentialChangesMoveWithEveryCredentialChangeOnly(t *testing.T) {
	a := newApplier(t)
	step := func(what string, want uint64, cmd Command) {
		t.Helper()
		before := a.fsm.CredentialChanges()
		a.apply(cmd)
		if got := a.fsm.CredentialChanges() - before; got != want {
			t.Fatalf("%s moved CredentialChanges by %d, want %d", what, got, want)
		}
	}
	step("creating a join token", 1, &CreateCredentialCommand{Credential: Credential{ID: "t-join", Role: api.CredWorker, Hash: "h-t-join", Uses: 2}, Now: a.now})
	step("a join (a use and a peer credential)", 1, &JoinWorkerCommand{Token: "t-join", Peer: Credential{ID: "p1", Role: api.CredPeer, Hash: "h-p1", Peer: "w1"}, Now: a.now})
	step("a peer's upsert", 0, &UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive", Now: a.now})
	step("revoking p1", 1, &RevokeCredentialCommand{ID: "p1", Now: a.now})
	step("revoking p1 again", 0, &RevokeCredentialCommand{ID: "p1", Now: a.now + 1})
	step("revoking an unknown credential", 0, &RevokeCredentialCommand{ID: "nobody", Now: a.now})
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	before := a.fsm.CredentialChanges()
	if err := a.fsm.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if a.fsm.CredentialChanges() == before {
		t.Fatal("a Restore left CredentialChanges where it was")
	}
	step("a peer's upsert after the restore", 0, &UpsertPeerCommand{ID: "w2", Roles: []string{"worker"}, State: "alive", Now: a.now})
	step("creating a credential after the restore", 1, &CreateCredentialCommand{Credential: Credential{ID: "op", Role: api.CredOperator, Hash: "h-op"}, Now: a.now})
}

// TestLedger_PeerResultsSumsEveryPeersDoneAndFailed: the dashboard's
// count of results, summed in place, is the sum over the peers' records.
func TestLedger_PeerResultsSumsEveryPeersDoneAndFailed(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{"worker"}, State: "alive", Now: 1})
	a.apply(&UpsertPeerCommand{ID: "w2", Roles: []string{"worker"}, State: "alive", Now: 1})
	a.submit("j1", 3, 0, 0)
	g1, g2 := a.lease("w1", 2), a.lease("w2", 1)
	if !a.complete("w1", g1[0], "") || !a.complete("w1", g1[1], "trap") || !a.complete("w2", g2[0], "") {
		t.Fatal("a completion was refused")
	}
	var got, want int
	a.fsm.View(func(l *Ledger) {
		got = l.PeerResults()
		for _, p := range l.Peers() {
			want += p.Done + p.Failed
		}
	})
	if got != 3 || got != want {
		t.Fatalf("PeerResults %d, the peers' records sum to %d; want 3", got, want)
	}
}
