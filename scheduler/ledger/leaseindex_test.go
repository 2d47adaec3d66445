package ledger

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// walkedLeasesOf is LeasesOf as it was before the index: every task and
// replica of the ledger walked for the worker's live leases, sorted.
func walkedLeasesOf(l *Ledger, worker string) []api.TaskRef {
	var out []api.TaskRef
	for k, e := range l.scanLeases() {
		if e.worker == worker {
			out = append(out, k.ref())
		}
	}
	sortRefs(out)
	return out
}

// wantIndexMatchesAWalk fails unless every view of the lease index
// (LeasesOf, EachLeaseOf, RunningByWorker) says what a walk of every task
// says, for each of workers.
func wantIndexMatchesAWalk(t *testing.T, l *Ledger, workers []string, label string) {
	t.Helper()
	running := l.RunningByWorker()
	walked := map[string]int{}
	for _, e := range l.scanLeases() {
		walked[e.worker]++
	}
	if !maps.Equal(running, walked) {
		t.Fatalf("%s: RunningByWorker %v, a walk of the tasks %v", label, running, walked)
	}
	for _, w := range workers {
		want := walkedLeasesOf(l, w)
		if got := l.LeasesOf(w); !slices.Equal(got, want) {
			t.Fatalf("%s: LeasesOf(%s) = %v, a walk of the tasks %v", label, w, got, want)
		}
		var each []api.TaskRef
		l.EachLeaseOf(w, func(ref api.TaskRef) {
			each = append(each, ref)
			if j := l.jobs[ref.Job]; j == nil || !l.indexed(leaseKey(j, ref.Index, ref.Attempt), w) || l.peekTask(ref.Job, ref.Index) == nil {
				t.Fatalf("%s: EachLeaseOf(%s) gives %+v, which is no live lease", label, w, ref)
			} else if e, expiry := leaseKey(j, ref.Index, ref.Attempt).expiryOf(), leaseExpiryOf(l, ref); e != expiry {
				t.Fatalf("%s: lease %+v expires at %d in the lease index, %d in LeaseExpiry", label, ref, e, expiry)
			}
		})
		slices.SortFunc(each, api.CompareTaskRefs)
		if !slices.Equal(each, want) {
			t.Fatalf("%s: EachLeaseOf(%s) visits %v, a walk of the tasks %v", label, w, each, want)
		}
	}
}

// leaseIndexWalk drives three FSMs with the same random log over jobs with
// and without replicas: one from the start, a twin from the start (same
// log, so the same index), and one restored from a snapshot half way.
type leaseIndexWalk struct {
	*replicaWalk
	twin, restored *FSM
	// moved counts, per command type, the commands that changed some
	// worker's leases, so the walk shows it took every path.
	moved map[CommandType]int
}

func newLeaseIndexWalk(t *testing.T, seed uint64) *leaseIndexWalk {
	a := newApplier(t)
	w := &leaseIndexWalk{replicaWalk: &replicaWalk{t: t, rng: rand.New(rand.NewPCG(seed, 38)), a: a, workers: []string{"w1", "w2", "w3", "w4", "w5"}},
		twin: NewFSM(), moved: map[CommandType]int{}}
	w.twin.Apply(mustEncode(t, &PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})) // as newApplier did
	setup := []Command{
		&CreateCredentialCommand{Credential: Credential{ID: "tok-a", Role: api.CredWorker, Hash: "h-tok-a", Uses: -1, MaxCores: 4}, Now: a.now},
		&CreateCredentialCommand{Credential: Credential{ID: "tok-b", Role: api.CredWorker, Hash: "h-tok-b", Uses: -1, MaxCores: 4}, Now: a.now},
	}
	for i, id := range w.workers { // two credentials, so replicas may go to distinct ones
		setup = append(setup, &JoinWorkerCommand{Token: []string{"tok-a", "tok-b"}[i%2], Peer: Credential{ID: "p-" + id, Role: api.CredPeer, Hash: "h-p-" + id, Peer: id}, Now: a.now},
			&UpsertPeerCommand{ID: id, Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	}
	for _, c := range setup {
		data := mustEncode(t, c)
		if r1, r2 := a.fsm.Apply(data), w.twin.Apply(data); r1 != nil && !sameResponse(r1, r2) {
			t.Fatalf("setup %T: %v vs %v", c, r1, r2)
		}
	}
	return w
}

func mustEncode(t *testing.T, c Command) []byte {
	t.Helper()
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// encode gives the command as a leader would propose it: leases and
// completions in the compact shape half the time.
func (w *leaseIndexWalk) encode(c Command) []byte {
	encode := Encode
	if w.rng.IntN(2) == 0 {
		encode = EncodeCompact
	}
	data, err := encode(c)
	if err != nil {
		w.t.Fatal(err)
	}
	return data
}

func (w *leaseIndexWalk) step(i int) {
	t := w.t
	w.a.now += int64(w.rng.IntN(800))
	c := w.command()
	data := w.encode(c)
	before := w.leasesByWorker(w.a.fsm)
	r1 := w.a.fsm.Apply(data)
	if r2 := w.twin.Apply(data); !sameResponse(r1, r2) {
		t.Fatalf("step %d: the twin answers %T %v, the ledger %v", i, c, r2, r1)
	}
	if w.restored != nil {
		if r3 := w.restored.Apply(data); !sameResponse(r1, r3) {
			t.Fatalf("step %d: the restored ledger answers %T %v, the ledger %v", i, c, r3, r1)
		}
	}
	if gs, ok := r1.([]Grant); ok {
		for _, g := range gs {
			w.grants = append(w.grants, walkGrant{c.(*LeaseTasksCommand).Worker, g})
		}
	}
	if after := w.leasesByWorker(w.a.fsm); !maps.EqualFunc(before, after, slices.Equal) {
		w.moved[CommandType(data[0])]++
	}
	w.check(fmt.Sprintf("step %d after %T", i, c))
}

func (w *leaseIndexWalk) check(label string) {
	fsms := map[string]*FSM{"ledger": w.a.fsm, "twin": w.twin, "restored": w.restored}
	for name, f := range fsms {
		if f != nil {
			f.View(func(l *Ledger) {
				wantIndexMatchesAWalk(w.t, l, w.workers, label+": "+name)
				if err := l.CheckIndexes(); err != nil {
					w.t.Fatalf("%s: %s: %v", label, name, err)
				}
			})
		}
	}
	want := w.leasesByWorker(w.a.fsm)
	for name, f := range fsms {
		if f != nil && f != w.a.fsm {
			if got := w.leasesByWorker(f); !maps.EqualFunc(got, want, slices.Equal) {
				w.t.Fatalf("%s: the %s's leases by worker %v, the ledger's %v", label, name, got, want)
			}
		}
	}
}

func (w *leaseIndexWalk) leasesByWorker(f *FSM) map[string][]api.TaskRef {
	out := map[string][]api.TaskRef{}
	f.View(func(l *Ledger) {
		for _, id := range w.workers {
			if refs := l.LeasesOf(id); len(refs) > 0 {
				out[id] = refs
			}
		}
	})
	return out
}

// TestLeaseIndex_MatchesAWalkAfterRandomCommands: after every command of
// random logs (leases granted, renewed, completed, failed, released,
// expired, cancelled, replicas voted down; JSON and compact shapes), the
// lease index of a ledger, of a twin applying the same log, and of a
// ledger restored from a snapshot half way says what a walk of every task says,
// and the three agree. It fails if any Apply path forgets the index.
func TestLeaseIndex_MatchesAWalkAfterRandomCommands(t *testing.T) {
	total := map[CommandType]int{}
	for seed := uint64(1); seed <= 12; seed++ {
		w := newLeaseIndexWalk(t, seed)
		const steps = 600
		for i := range steps {
			if i == steps/2 {
				w.restored = snapshotInto(t, w.a.fsm)
				w.check(fmt.Sprintf("seed %d: right after the restore", seed))
			}
			w.step(i)
		}
		if w.restored.StateHash() != w.a.fsm.StateHash() || w.twin.StateHash() != w.a.fsm.StateHash() {
			t.Fatalf("seed %d: state hashes differ after the walk", seed)
		}
		for k, n := range w.moved {
			total[k] += n
		}
	}
	// The walk must have taken every path that grants or ends a lease.
	for _, c := range []CommandType{cmdLeaseTasks, cmdLeaseTasksCompact, cmdCompleteTasks, cmdCompleteTasksCompact,
		cmdExpireLeases, cmdReleaseTasks, cmdCancelJob} {
		if total[c] == 0 {
			t.Errorf("no %s changed a worker's leases: the walk no longer covers it", c)
		}
	}
	t.Logf("commands that moved leases: %v", total)
}

// TestLeaseIndex_DistrustedWorkerHoldsNoLease: a liar distrusted by its
// third outvote while it holds a plain lease and a replica's has both
// handed back, and the index forgets it.
func TestLeaseIndex_DistrustedWorkerHoldsNoLease(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "liar")
	a.submit("plain", 1, 0, 5) // priority 5: leased first
	held := a.mustLease("liar")
	a.liarRound("r0")
	a.liarRound("r1")
	a.submitSpec("r2", replicaSpec(1, 3, 2, 0))
	g1, g2, gl := a.mustLease("w1"), a.mustLease("w2"), a.mustLease("liar")
	a.submitSpec("rx", replicaSpec(1, 3, 2, 0))
	gx := a.mustLease("liar")
	a.vote("liar", gl, "lie")
	a.vote("w1", g1, "truth")
	want := []api.TaskRef{held.Ref(), gx.Ref()}
	sortRefs(want)
	a.fsm.View(func(l *Ledger) {
		if got := l.LeasesOf("liar"); !slices.Equal(got, want) {
			t.Fatalf("before the deciding vote the liar holds %v, want %v", got, want)
		}
	})
	a.vote("w2", g2, "truth") // the liar's third outvote
	if p := a.peer("liar"); !p.Distrusted {
		t.Fatalf("the liar is not distrusted: %+v", p)
	}
	a.fsm.View(func(l *Ledger) {
		wantIndexMatchesAWalk(t, l, []string{"w1", "w2", "liar"}, "after the distrust")
		if got := l.LeasesOf("liar"); len(got) != 0 {
			t.Fatalf("a distrusted worker still holds %v", got)
		}
		if n, ok := l.RunningByWorker()["liar"]; ok {
			t.Fatalf("RunningByWorker counts %d leases of a distrusted worker", n)
		}
		if err := l.CheckIndexes(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaseIndex_SameLogSameIndex: two ledgers applying the same random
// log (with grants guessed at, so many commands name leases that are not
// current) hold the same leases for every worker after every command.
func TestLeaseIndex_SameLogSameIndex(t *testing.T) {
	workers := []string{"w1", "w2", "w3"}
	for seed := uint64(1); seed <= 5; seed++ {
		a, b := NewFSM(), NewFSM()
		for i, c := range randomCommands(rand.New(rand.NewPCG(seed, 38)), 500) {
			a.Apply(c)
			b.Apply(c)
			a.View(func(la *Ledger) {
				b.View(func(lb *Ledger) {
					for _, w := range workers {
						if x, y := la.LeasesOf(w), lb.LeasesOf(w); !slices.Equal(x, y) {
							t.Fatalf("seed %d command %d: %s holds %v in one ledger, %v in the other", seed, i, w, x, y)
						}
					}
					wantIndexMatchesAWalk(t, la, workers, fmt.Sprintf("seed %d command %d", seed, i))
				})
			})
		}
	}
}

func leaseExpiryOf(l *Ledger, ref api.TaskRef) int64 {
	expiry, _, _ := l.LeaseExpiry(ref)
	return expiry
}

// TestLeaseIndex_ExpiredLeasesFollowRenewalsAndReplicas: with the
// expiries kept only in the tasks and replicas, ExpiredLeases lists
// exactly the leases due by a time, sorted, for tasks and replicas alike:
// a renewal moves a lease later, a completion or release takes it out,
// and a restored ledger lists the same.
func TestLeaseIndex_ExpiredLeasesFollowRenewalsAndReplicas(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2")
	a.submit("plain", 4, 3, 0) // timeout 1 s, slack 1 s: leases expire 2 s after their grant
	early := a.lease("w1", 2)
	a.now += int64(time.Second)
	late := a.lease("w2", 2)
	a.submitSpec("rep", replicaSpec(1, 2, 2, 2))
	rep := a.mustLease("w1")
	due := func(at int64) []api.TaskRef {
		var out []api.TaskRef
		a.fsm.View(func(l *Ledger) { out = l.ExpiredLeases(at) })
		return out
	}
	refs := func(gs ...Grant) []api.TaskRef {
		out := []api.TaskRef{}
		for _, g := range gs {
			out = append(out, g.Ref())
		}
		slices.SortFunc(out, api.CompareTaskRefs)
		return out
	}
	check := func(label string, at int64, want []api.TaskRef) {
		t.Helper()
		if got := due(at); !slices.Equal(got, want) {
			t.Fatalf("%s: expired by %+d ms: %v, want %v", label, (at-a.now)/1e6, got, want)
		}
	}
	ms := int64(time.Millisecond)
	check("before any expiry", a.now+1000*ms-1, nil)
	check("the first two", a.now+1000*ms, refs(early...))
	check("all", a.now+2000*ms, refs(append(append(early, late...), rep)...))

	// w1 renews its first lease and the replica 1.5 s on; its second ends.
	a.now += 500 * ms
	if n := a.apply(&RenewLeasesCommand{Worker: "w1", Now: a.now, Slack: int64(time.Second), Tasks: []api.TaskRef{early[0].Ref(), rep.Ref()}}); n != 2 {
		t.Fatalf("renewed %v, want 2", n)
	}
	a.complete("w1", early[1], "")
	check("renewed, one done", a.now+500*ms, nil)
	check("w2's now", a.now+1500*ms, refs(late...))
	check("then the renewed", a.now+2000*ms, refs(append(append([]Grant{early[0]}, late...), rep)...))
	a.checkIndexes()

	restored := &applier{t: t, fsm: snapshotInto(t, a.fsm), now: a.now}
	var got []api.TaskRef
	restored.fsm.View(func(l *Ledger) { got = l.ExpiredLeases(a.now + 2000*ms) })
	if want := refs(append(append([]Grant{early[0]}, late...), rep)...); !slices.Equal(got, want) {
		t.Fatalf("restored: expired %v, want %v", got, want)
	}
}
