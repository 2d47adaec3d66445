package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// TestStoragePeer_RepairOrderRebuildsTheLostShardAndCommitsTheManifest: a
// repair order in a heartbeat answer is carried out: the lost shard is
// rebuilt from the others onto the target peer, and the manifest placing
// it there is committed.
func TestStoragePeer_RepairOrderRebuildsTheLostShardAndCommitsTheManifest(t *testing.T) {
	peers, m := codedBlob(t, []string{"p1", "p2", "p3"}, []string{"p4"})
	lostShard := m.Segments[0].Shards[0]
	if err := peers[lostShard.Peer].(storage.LocalPeer).Store.Delete(lostShard.Hash); err != nil {
		t.Fatal(err)
	}
	g := newFakeGrid()
	g.manifests[m.Hash], g.shardPeers = m, peers
	order := api.RepairOrder{Blob: m.Hash, Lost: []storage.ShardLoc{{Segment: 0, Index: 0}}, Targets: []string{"p4"}}
	g.onHeartbeat = func(n int, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		if n == 0 {
			return &api.HeartbeatResponse{Repairs: []api.RepairOrder{order}}, nil
		}
		return &api.HeartbeatResponse{}, nil
	}
	w := testWorker(t, g, Config{ID: "s1", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour, SweepInterval: -1})
	runWorker(t, w)
	eventually(t, "the repaired manifest committed", func() bool { return len(g.callsOf("CommitRepair")) > 0 })

	fixed := g.callsOf("CommitRepair")[0].manifest
	if got := fixed.Segments[0].Shards[0]; got != (storage.Shard{Hash: lostShard.Hash, Root: lostShard.Root, Peer: "p4"}) {
		t.Fatalf("repaired shard %+v, want %s on p4", got, lostShard.Hash)
	}
	for i, s := range fixed.Segments[0].Shards[1:] {
		if s != m.Segments[0].Shards[i+1] {
			t.Fatalf("shard %d moved: %+v, was %+v", i+1, s, m.Segments[0].Shards[i+1])
		}
	}
	if has, err := peers["p4"].(storage.LocalPeer).Store.Has(lostShard.Hash); err != nil || !has {
		t.Fatalf("p4 holds the rebuilt shard: %v, %v", has, err)
	}
}

// TestStoragePeer_FailedRepairCommitsNothing: an order for a blob the grid
// no longer knows fails without committing anything, and the peer goes on.
func TestStoragePeer_FailedRepairCommitsNothing(t *testing.T) {
	g := newFakeGrid()
	gone := storage.Hash([]byte("gone"))
	g.onHeartbeat = func(n int, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		if n == 0 {
			return &api.HeartbeatResponse{Repairs: []api.RepairOrder{{Blob: gone, Lost: []storage.ShardLoc{{}}, Targets: []string{"p4"}}}}, nil
		}
		return &api.HeartbeatResponse{}, nil
	}
	w := testWorker(t, g, Config{ID: "s1", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour, SweepInterval: -1})
	run := runWorker(t, w)
	eventually(t, "the manifest asked for", func() bool { return len(g.callsOf("Manifest")) > 0 })
	run.stop() // waits for the repair
	if got := g.callsOf("Manifest")[0].hash; got != gone {
		t.Fatalf("asked for the manifest of %s, want %s", got, gone)
	}
	if n := len(g.callsOf("CommitRepair")); n != 0 {
		t.Fatalf("%d manifests committed by a failed repair", n)
	}
}

// TestStoragePeer_SweepDeletesOrphansAndKeepsPlacedShards: after
// SweepDelay, and every SweepInterval after, a storage peer asks the grid
// which of its shards are still placed on it and deletes the others.
func TestStoragePeer_SweepDeletesOrphansAndKeepsPlacedShards(t *testing.T) {
	g := newFakeGrid()
	placed, orphan := []byte("placed shard"), []byte("orphan shard")
	g.placed = func(hashes []string) []string {
		return slices.DeleteFunc(slices.Clone(hashes), func(h string) bool { return h != storage.Hash(placed) })
	}
	w := testWorker(t, g, Config{ID: "s1", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour,
		SweepDelay: 20 * time.Millisecond, SweepInterval: 20 * time.Millisecond, SweepGrace: time.Nanosecond})
	for _, data := range [][]byte{placed, orphan} {
		if err := w.shards.Put(context.Background(), storage.Hash(data), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	runWorker(t, w)
	eventually(t, "two sweeps", func() bool { return len(g.callsOf("PlacedShards")) >= 2 })

	sweeps := g.callsOf("PlacedShards")
	if first := sweeps[0]; first.peer != "s1" || !sameStrings(first.shards, []string{storage.Hash(placed), storage.Hash(orphan)}) {
		t.Fatalf("first sweep asked about %s %v, want s1's two shards", first.peer, first.shards)
	}
	if after := sweeps[0].at.Sub(began); after < 20*time.Millisecond {
		t.Fatalf("first sweep %v after the start, before the 20ms delay", after)
	}
	if gap := sweeps[1].at.Sub(sweeps[0].at); gap < 20*time.Millisecond {
		t.Fatalf("second sweep %v after the first, before the 20ms interval", gap)
	}
	if !sameStrings(sweeps[1].shards, []string{storage.Hash(placed)}) {
		t.Fatalf("second sweep asked about %v, want only the placed shard left", sweeps[1].shards)
	}
	if has, _ := w.shards.Has(storage.Hash(orphan)); has {
		t.Fatal("the orphan shard is still there")
	}
	if has, _ := w.shards.Has(storage.Hash(placed)); !has {
		t.Fatal("the placed shard was swept")
	}
}

// codedBlob erasure-codes a random blob (k=2, m=1, one segment) onto local
// shard stores, one per holder, and makes empty stores for the spares.
func codedBlob(t *testing.T, holders, spares []string) (map[string]storage.ShardPeer, *storage.Manifest) {
	t.Helper()
	peers := map[string]storage.ShardPeer{}
	var refs []storage.PeerRef
	for _, id := range append(slices.Clone(holders), spares...) {
		store, err := storage.OpenShardStore(filepath.Join(t.TempDir(), id), storage.ShardStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		peers[id] = storage.LocalPeer{Store: store}
		if slices.Contains(holders, id) {
			refs = append(refs, storage.PeerRef{ID: id, Addr: "local:" + id})
		}
	}
	data := make([]byte, 3000)
	rand.Read(data)
	m, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{K: 2, M: 1, SegmentSize: 4096, Peers: refs,
		Dial: func(p storage.PeerRef) storage.ShardPeer { return peers[p.ID] }})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Segments) != 1 {
		t.Fatalf("coded blob %+v, want one segment", m)
	}
	return peers, m
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestStoragePeer_RefusesUploadsPastItsQuota: even with a valid put
// capability, a storage peer takes no shard that would pass its quota
// (Config.ShardQuota, or storage.DefaultShardQuota when unset): 507 naming
// it, and nothing stored.
func TestStoragePeer_RefusesUploadsPastItsQuota(t *testing.T) {
	g := newFakeGrid()
	w := testWorker(t, g, Config{ID: "s1", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour, SweepInterval: -1, ShardQuota: 64 << 10})
	c := storage.NewShardClient(w.StorageAddr(), "", nil)
	c.Caps = map[string]string{storage.OpPut: testGridCA().capFor(t, testGridCA().server, storage.OpPut, "s1", time.Minute)}
	ctx := context.Background()
	small := bytes.Repeat([]byte("s"), 40<<10)
	if err := c.Put(ctx, storage.Hash(small), small); err != nil {
		t.Fatalf("a shard under the quota: %v", err)
	}
	stuffing := bytes.Repeat([]byte("x"), 40<<10) // a 200 MB stuffing put, scaled to the quota
	err := c.Put(ctx, storage.Hash(stuffing), stuffing)
	if !errors.Is(err, storage.ErrStoreFull) || !strings.Contains(err.Error(), "quota of 65536 bytes") {
		t.Fatalf("a shard past the quota: %v, want 507 naming the quota", err)
	}
	if has, _ := w.shards.Has(storage.Hash(stuffing)); has {
		t.Fatal("the stuffing shard was stored")
	}
	d := testWorker(t, g, Config{ID: "s2", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour, SweepInterval: -1})
	if d.shards.MaxBytes() != storage.DefaultShardQuota {
		t.Fatalf("a peer with no quota set holds up to %d bytes, want the default %d", d.shards.MaxBytes(), storage.DefaultShardQuota)
	}
}
