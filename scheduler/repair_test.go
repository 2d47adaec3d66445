package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// scanNeeds is repair planning as it was before the blob index: every
// manifest, in hash order. The indexed planner must find the same.
func scanNeeds(s *Server, now time.Time) []repairNeed {
	var needs []repairNeed
	s.store.FSM().View(func(l *Ledger) {
		gone := l.goneAt(now, s.cfg.RepairGrace)
		for _, h := range sortedKeys(l.manifests) {
			if lost := s.lostShards(l.manifests[h], gone); len(lost) > 0 {
				needs = append(needs, repairNeed{h, lost})
			}
		}
	})
	return needs
}

// repairFixture is a ledger of storage peers p-00..p-23 and blobs placed by
// randomManifest, and a planner over it with a one-minute grace. Blobs may
// place shards on p-24 and p-25 too, which the ledger does not know.
type repairFixture struct {
	a   *applier
	s   *Server
	r   *rand.Rand
	now time.Time
}

const fixturePeers, fixtureKnown = 26, 24

func newRepairFixture(t *testing.T, seed uint64) *repairFixture {
	a := newApplier(t)
	f := &repairFixture{a: a, s: plannerOn(a.fsm), r: rand.New(rand.NewPCG(seed, 7)), now: time.Unix(1000, 0)}
	f.s.cfg.RepairGrace = time.Minute
	for i := range fixtureKnown {
		f.setPeer(benchPeerID(i), api.PeerAlive, f.now.Add(-time.Hour))
	}
	return f
}

func (f *repairFixture) setPeer(id, state string, since time.Time) {
	f.a.apply(cmdUpsertPeer, &UpsertPeerCommand{ID: id, Roles: []string{api.RoleStorage}, StorageAddress: "a:1",
		State: state, Now: since.UnixNano()})
}

// put commits a manifest for blob n (a new one, or a repair's replacement)
// over peers p-00.. up to peers, with unplaced parity shards left unplaced.
func (f *repairFixture) put(n, peers, unplaced int) *storage.Manifest {
	m := randomManifest(f.r, n, peers, unplaced)
	if resp := f.a.apply(cmdPutManifest, &PutManifestCommand{Manifest: m, Now: 1}); resp != nil {
		f.a.t.Fatalf("put %d: %v", n, resp)
	}
	return m
}

// needs plans with the index and checks the full scan agrees.
func (f *repairFixture) needs() []repairNeed {
	f.a.t.Helper()
	got, _ := f.s.repairNeeds(f.now)
	if want := scanNeeds(f.s, f.now); !reflect.DeepEqual(got, want) {
		f.a.t.Fatalf("indexed planner: %v\nfull scan: %v", got, want)
	}
	return got
}

// lostOn is where m places shards on peer.
func lostOn(m *storage.Manifest, peer string) []storage.ShardLoc {
	return m.Lost(func(p string) bool { return p != peer })
}

func TestPlanRepairs_PeerDownPastGrace(t *testing.T) {
	f := newRepairFixture(t, 1)
	var on []*storage.Manifest // blobs with a shard on p-03
	for n := range 20 {
		if m := f.put(n, fixtureKnown, 0); slices.Contains(m.Peers(), benchPeerID(3)) {
			on = append(on, m)
		}
	}
	if len(f.needs()) != 0 {
		t.Fatal("repairs planned with every peer alive")
	}
	f.setPeer(benchPeerID(3), api.PeerDown, f.now.Add(-time.Minute))
	var want []repairNeed
	for _, m := range on {
		want = append(want, repairNeed{m.Hash, lostOn(m, benchPeerID(3))})
	}
	if got := f.needs(); len(on) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("p-03 down past the grace: planned %v, want %v", got, want)
	}
	f.s.planRepairs(f.now)
	if got := slices.Sorted(maps.Keys(f.s.repairs.pending)); len(got) != len(on) {
		t.Fatalf("orders for %v, want one per blob on p-03 (%d)", got, len(on))
	}
}

func TestPlanRepairs_PeerDownWithinGrace(t *testing.T) {
	f := newRepairFixture(t, 2)
	for n := range 20 {
		f.put(n, fixtureKnown, 0)
	}
	f.setPeer(benchPeerID(3), api.PeerDown, f.now.Add(-time.Minute+time.Second))
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
	f.a.apply(cmdDeleteBlobs, &DeleteBlobsCommand{Hashes: []string{gone.Hash}})
	f.s.repairs.report(m.Hash, []storage.ShardLoc{{Segment: 0, Index: 2}})
	f.s.repairs.report(gone.Hash, []storage.ShardLoc{{Segment: 0, Index: 1}}) // deleted since: nothing to repair
	want := []repairNeed{{m.Hash, []storage.ShardLoc{{Segment: 0, Index: 2}}}}
	if got := f.needs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("planned %v, want the reported shard %v", got, want)
	}
	f.s.repairs.done(m.Hash)
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
				f.a.shardIndex() // checks the blob index against the manifests
			}
			restored := snapshotInto(t, f.a.fsm)
			restored.View(func(l *Ledger) { checkBlobIndex(t, l) })
			rs := plannerOn(restored)
			rs.cfg.RepairGrace, rs.repairs = f.s.cfg.RepairGrace, f.s.repairs
			got, _ := rs.repairNeeds(f.now)
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
		f.a.apply(cmdDeleteBlobs, &DeleteBlobsCommand{Hashes: []string{blob}})
	case op == 6: // down within or past the grace
		f.setPeer(benchPeerID(r.IntN(fixtureKnown)), api.PeerDown, f.now.Add(-time.Duration(r.IntN(120))*time.Second))
	case op == 7:
		for i := range fixtureKnown {
			f.setPeer(benchPeerID(i), api.PeerAlive, f.now)
		}
	case op == 8:
		f.s.repairs.report(blob, []storage.ShardLoc{{Segment: 0, Index: r.IntN(6)}})
	default:
		f.s.repairs.done(blob)
	}
}
