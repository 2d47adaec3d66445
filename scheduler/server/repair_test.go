package server

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/ledger/ledgertest"
	"github.com/peergrid/peergrid/storage"
)

// scanNeeds is repair planning as it was before the blob index: every
// manifest, in hash order. The indexed planner must find the same.
func scanNeeds(rp *repairPlanner, fsm *ledger.FSM, now time.Time, blobs []string) []repairNeed {
	var needs []repairNeed
	fsm.View(func(l *ledger.Ledger) {
		gone := l.GoneAt(now, rp.grace)
		for _, h := range blobs {
			if m := l.Manifest(h); m != nil {
				if lost := rp.lostShards(m, gone); len(lost) > 0 {
					needs = append(needs, repairNeed{h, lost})
				}
			}
		}
	})
	return needs
}

// repairFixture is a ledger of storage peers p-00..p-23 and blobs placed by
// randomManifest, and a planner over it with a one-minute grace. Blobs may
// place shards on p-24 and p-25 too, which the ledger does not know.
type repairFixture struct {
	t     *testing.T
	fsm   *ledger.FSM
	rp    *repairPlanner
	r     *rand.Rand
	now   time.Time
	blobs []string // every blob hash ever put, sorted: the full scan's candidates
}

const fixturePeers, fixtureKnown = 26, 24

func newRepairFixture(t *testing.T, seed uint64) *repairFixture {
	f := &repairFixture{t: t, fsm: ledger.NewFSM(), rp: newRepairPlanner(time.Minute, 5*time.Minute),
		r: rand.New(rand.NewPCG(seed, 7)), now: time.Unix(1000, 0)}
	for i := range fixtureKnown {
		f.setPeer(storagetest.PeerID(i), api.PeerAlive, f.now.Add(-time.Hour))
	}
	return f
}

func (f *repairFixture) setPeer(id, state string, since time.Time) {
	f.apply(&ledger.UpsertPeerCommand{ID: id, Roles: []string{api.RoleStorage}, StorageAddress: "a:1",
		State: state, Now: since.UnixNano()})
}

// put commits a manifest for blob n (a new one, or a repair's replacement)
// over peers p-00.. up to peers, with unplaced parity shards left unplaced.
func (f *repairFixture) put(n, peers, unplaced int) *storage.Manifest {
	m := storagetest.RandomManifest(f.r, n, peers, unplaced)
	if resp := f.apply(&ledger.PutManifestCommand{Manifest: m, Now: 1}); resp != nil {
		f.t.Fatalf("put %d: %v", n, resp)
	}
	if i, found := slices.BinarySearch(f.blobs, m.Hash); !found {
		f.blobs = slices.Insert(f.blobs, i, m.Hash)
	}
	return m
}

func (f *repairFixture) apply(c ledger.Command) any { return ledgertest.Apply(f.t, f.fsm, c) }

// needs plans with the index and checks the full scan agrees.
func (f *repairFixture) needs() []repairNeed {
	f.t.Helper()
	got, _ := f.rp.needs(f.fsm, f.now)
	if want := scanNeeds(f.rp, f.fsm, f.now, f.blobs); !reflect.DeepEqual(got, want) {
		f.t.Fatalf("indexed planner: %v\nfull scan: %v", got, want)
	}
	return got
}

// checkIndexes fails unless the ledger's derived indexes match its records.
func (f *repairFixture) checkIndexes(fsm *ledger.FSM) {
	f.t.Helper()
	fsm.View(func(l *ledger.Ledger) {
		if err := l.CheckIndexes(); err != nil {
			f.t.Fatal(err)
		}
	})
}

// lostOn is where m places shards on peer.
func lostOn(m *storage.Manifest, peer string) []storage.ShardLoc {
	return m.Lost(func(p string) bool { return p != peer })
}

func TestPlanRepairs_PeerDownPastGrace(t *testing.T) {
	f := newRepairFixture(t, 1)
	var on []*storage.Manifest // blobs with a shard on p-03
	for n := range 20 {
		if m := f.put(n, fixtureKnown, 0); slices.Contains(m.Peers(), storagetest.PeerID(3)) {
			on = append(on, m)
		}
	}
	if len(f.needs()) != 0 {
		t.Fatal("repairs planned with every peer alive")
	}
	f.setPeer(storagetest.PeerID(3), api.PeerDown, f.now.Add(-time.Minute))
	var want []repairNeed
	for _, m := range on {
		want = append(want, repairNeed{m.Hash, lostOn(m, storagetest.PeerID(3))})
	}
	if got := f.needs(); len(on) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("p-03 down past the grace: planned %v, want %v", got, want)
	}
	f.rp.plan(f.fsm, f.now)
	if got := slices.Sorted(maps.Keys(f.rp.pending)); len(got) != len(on) {
		t.Fatalf("orders for %v, want one per blob on p-03 (%d)", got, len(on))
	}
}

func TestPlanRepairs_PeerDownWithinGrace(t *testing.T) {
	f := newRepairFixture(t, 2)
	for n := range 20 {
		f.put(n, fixtureKnown, 0)
	}
	f.setPeer(storagetest.PeerID(3), api.PeerDown, f.now.Add(-time.Minute+time.Second))
	if got := f.needs(); len(got) != 0 {
		t.Fatalf("p-03 down within the grace: planned %v", got)
	}
}

func TestPlanRepairs_UnplacedShard(t *testing.T) {
	f := newRepairFixture(t, 3)
	f.put(0, fixtureKnown, 0)
	m := f.put(1, fixtureKnown, 1)
	want := []repairNeed{{m.Hash, []storage.ShardLoc{{Segment: 0, Index: m.K}}}}
	if got := f.needs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("planned %v, want the unplaced shard %v", got, want)
	}
}

func TestPlanRepairs_ReportedFault(t *testing.T) {
	f := newRepairFixture(t, 4)
	m := f.put(0, fixtureKnown, 0)
	gone := f.put(1, fixtureKnown, 0)
	f.put(2, fixtureKnown, 0)
	f.apply(&ledger.DeleteBlobsCommand{Hashes: []string{gone.Hash}})
	f.rp.report(m.Hash, []storage.ShardLoc{{Segment: 0, Index: 2}})
	f.rp.report(gone.Hash, []storage.ShardLoc{{Segment: 0, Index: 1}}) // deleted since: nothing to repair
	want := []repairNeed{{m.Hash, []storage.ShardLoc{{Segment: 0, Index: 2}}}}
	if got := f.needs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("planned %v, want the reported shard %v", got, want)
	}
	f.rp.done(m.Hash)
	if got := f.needs(); len(got) != 0 {
		t.Fatalf("after the repair: planned %v", got)
	}
}

// TestPlanRepairs_MatchesFullScan drives random ledgers through puts,
// repairs (a blob's manifest replaced), deletes, peer state changes and
// fault reports, and checks after each round that the indexed planner plans
// what a scan of every manifest does, before and after a snapshot restore.
func TestPlanRepairs_MatchesFullScan(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			f := newRepairFixture(t, seed)
			for range 30 {
				f.randomStep()
				f.needs()
				f.checkIndexes(f.fsm)
			}
			restored := ledgertest.Restored(t, f.fsm)
			f.checkIndexes(restored)
			got, _ := f.rp.needs(restored, f.now)
			if want := f.needs(); !reflect.DeepEqual(got, want) {
				t.Fatalf("restored ledger plans %v, want %v", got, want)
			}
		})
	}
}

// randomStep changes the fixture's ledger or faults at random. Most steps
// leave blobs whole, so that each way of losing a shard is often the only
// one a blob has.
func (f *repairFixture) randomStep() {
	r := f.r
	n := r.IntN(40)
	blob := fmt.Sprintf("%064x", n) // randomManifest's hash for n
	switch op := r.IntN(10); {
	case op < 4: // a put, or a repair's replacement
		f.put(n, fixtureKnown, 0)
	case op == 4: // a shard unplaced, or placed on a peer the ledger does not know
		f.put(n, fixtureKnown+r.IntN(fixturePeers-fixtureKnown+1), r.IntN(2))
	case op == 5:
		f.apply(&ledger.DeleteBlobsCommand{Hashes: []string{blob}})
	case op == 6: // down within or past the grace
		f.setPeer(storagetest.PeerID(r.IntN(fixtureKnown)), api.PeerDown, f.now.Add(-time.Duration(r.IntN(120))*time.Second))
	case op == 7:
		for i := range fixtureKnown {
			f.setPeer(storagetest.PeerID(i), api.PeerAlive, f.now)
		}
	case op == 8:
		f.rp.report(blob, []storage.ShardLoc{{Segment: 0, Index: r.IntN(6)}})
	default:
		f.rp.done(blob)
	}
}

// TestRepairPlanner_AuthorizesOnlyTheOrderedWorkerToItsTargets: a repair
// commit is let through only from the worker the order went to (or an
// operator), and only to the order's targets; without an order, or after
// it is done, nothing is.
func TestRepairPlanner_AuthorizesOnlyTheOrderedWorkerToItsTargets(t *testing.T) {
	f := newRepairFixture(t, 9)
	m := f.put(1, fixtureKnown, 0)
	holder := m.Segments[0].Shards[0].Peer
	f.setPeer(holder, api.PeerDown, f.now.Add(-time.Hour))
	orders := f.rp.plan(f.fsm, f.now)
	if len(orders) != 1 {
		t.Fatalf("%d orders, want 1", len(orders))
	}
	o := orders[0]
	fixed := m.Clone()
	holds := map[string]bool{}
	for _, sh := range m.Segments[0].Shards {
		holds[sh.Peer] = true
	}
	for _, p := range o.order.Targets {
		if !holds[p] {
			fixed.Segments[0].Shards[0].Peer = p
			break
		}
	}
	moved := storage.Moved(m, fixed)
	as := func(role, peer string) *principal {
		return &principal{Credential: ledger.Credential{ID: "c-" + peer, Role: role, Peer: peer}}
	}
	if err := f.rp.authorize(as(api.CredPeer, o.worker), fixed, moved); err != nil {
		t.Fatalf("the ordered worker: %v", err)
	}
	if err := f.rp.authorize(as(api.CredOperator, ""), fixed, moved); err != nil {
		t.Fatalf("an operator: %v", err)
	}
	other := "someone-else"
	if err := f.rp.authorize(as(api.CredPeer, other), fixed, moved); !errors.Is(err, ledger.ErrManifestCommitted) {
		t.Fatalf("another worker: %v, want refused", err)
	}
	elsewhere := m.Clone()
	elsewhere.Segments[0].Shards[0].Peer = "not-a-target"
	if err := f.rp.authorize(as(api.CredPeer, o.worker), elsewhere, moved); !errors.Is(err, ledger.ErrManifestCommitted) {
		t.Fatalf("a move off the targets: %v, want refused", err)
	}
	f.rp.done(m.Hash)
	if err := f.rp.authorize(as(api.CredPeer, o.worker), fixed, moved); !errors.Is(err, ledger.ErrManifestCommitted) {
		t.Fatalf("after the order is done: %v, want refused", err)
	}
}
