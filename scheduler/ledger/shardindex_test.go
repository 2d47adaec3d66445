package ledger

import (
	"bytes"
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
)

// codedManifest puts data k=2+m=1 onto in-memory peers p0..p4 and returns
// the manifest, as a client would commit it.
func codedManifest(t *testing.T, data []byte) *storage.Manifest {
	t.Helper()
	_, refs, conns := storagetest.MemPeers(5)
	m, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{K: 2, M: 1, SegmentSize: 64,
		Peers: refs, Dial: storagetest.DialMap(conns)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (a *applier) shardIndex() shardIndex {
	a.t.Helper()
	var x shardIndex
	a.fsm.View(func(l *Ledger) {
		x = maps.Clone(l.placed)
		checkIndexes(a.t, l)
	})
	return x
}

// checkIndexes fails t unless every derived index is the one computed
// afresh from the ledger's records.
func checkIndexes(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
}

// blobsOn lists the blobs the index has on peer, sorted.
func blobsOn(l *Ledger, peer string) []string { return slices.Sorted(maps.Keys(l.byPeer.onPeer[peer])) }

// TestLedger_BlobIndexFollowsManifests: the index of blobs by holding peer,
// and of blobs with an unplaced shard, follows a put, a repair that moves a
// shard and places the unplaced one, a delete, and a snapshot restore.
func TestLedger_BlobIndexFollowsManifests(t *testing.T) {
	a := newApplier(t)
	h := func(c string) string { return strings.Repeat(c, 64) }
	shards := func(peers ...string) []storage.Shard {
		out := make([]storage.Shard, len(peers))
		for i, p := range peers {
			out[i] = storage.Shard{Hash: h(string(rune('1' + i))), Peer: p}
		}
		return out
	}
	manifest := func(blob string, s []storage.Shard) *storage.Manifest {
		return &storage.Manifest{Version: storage.ManifestVersion, Hash: blob, Size: 100, SegmentSize: 100, K: 2, M: 1,
			Segments: []storage.Segment{{Hash: storage.SegmentHash(2, 100, s), Shards: s}}}
	}
	a.apply(&PutManifestCommand{Manifest: manifest(h("a"), shards("p0", "p1", "")), Now: 10})
	a.apply(&PutManifestCommand{Manifest: manifest(h("b"), shards("p1", "p2", "p3")), Now: 10})
	a.shardIndex()
	a.fsm.View(func(l *Ledger) {
		if got := blobsOn(l, "p1"); !slices.Equal(got, []string{h("a"), h("b")}) {
			t.Fatalf("blobs on p1: %v", got)
		}
		if got := slices.Collect(maps.Keys(l.byPeer.unplaced)); !slices.Equal(got, []string{h("a")}) {
			t.Fatalf("unplaced blobs: %v, want only a", got)
		}
	})

	// A repair moves a's shard off p0 and places its missing one on p4.
	a.apply(&PutManifestCommand{Manifest: manifest(h("a"), shards("p2", "p1", "p4")), Now: 20})
	a.shardIndex()
	a.fsm.View(func(l *Ledger) {
		if len(l.byPeer.unplaced) != 0 || l.byPeer.onPeer["p0"] != nil {
			t.Fatalf("after the repair: unplaced %v, p0 holds %v", l.byPeer.unplaced, l.byPeer.onPeer["p0"])
		}
		if got := blobsOn(l, "p2"); !slices.Equal(got, []string{h("a"), h("b")}) {
			t.Fatalf("blobs on p2: %v", got)
		}
	})

	a.apply(&DeleteBlobsCommand{Hashes: []string{h("b")}})
	a.shardIndex()
	restored := snapshotInto(t, a.fsm)
	restored.View(func(l *Ledger) {
		checkIndexes(t, l)
		if got := blobsOn(l, "p3"); len(got) != 0 {
			t.Fatalf("p3 held only deleted b, index says %v", got)
		}
		if got := blobsOn(l, "p4"); !slices.Equal(got, []string{h("a")}) {
			t.Fatalf("restored blobs on p4: %v", got)
		}
	})
}

// TestLedger_ShardIndexFollowsManifests: the index of which shard is
// placed on which peer follows puts, a repair's new placement and deletes,
// counts a placement two blobs share once per blob, and is rebuilt the same
// by a snapshot restore.
func TestLedger_ShardIndexFollowsManifests(t *testing.T) {
	a := newApplier(t)
	ma := codedManifest(t, bytes.Repeat([]byte("0123456789"), 20)) // 4 segments
	mb := ma.Clone()                                               // another blob sharing every shard and placement
	mb.Hash = storage.Hash([]byte("blob b"))
	a.apply(&PutManifestCommand{Manifest: ma, Now: 10})
	a.apply(&PutManifestCommand{Manifest: mb, Now: 10})
	moved := ma.Segments[0].Shards[0]
	x := a.shardIndex()
	for _, seg := range ma.Segments {
		for _, sh := range seg.Shards {
			if x[ShardAt{sh.Hash, sh.Peer}] != 2 {
				t.Fatalf("shard %s on %s counted %d times, want 2 (two blobs)", sh.Hash, sh.Peer, x[ShardAt{sh.Hash, sh.Peer}])
			}
		}
	}

	// A repair moves blob a's first shard to a peer without a shard of that segment.
	fixed := ma.Clone()
	for _, p := range []string{"p0", "p1", "p2", "p3", "p4"} {
		if !slices.ContainsFunc(fixed.Segments[0].Shards, func(s storage.Shard) bool { return s.Peer == p }) {
			fixed.Segments[0].Shards[0].Peer = p
			break
		}
	}
	a.apply(&PutManifestCommand{Manifest: fixed, Now: 20})
	x = a.shardIndex()
	to := fixed.Segments[0].Shards[0].Peer
	if x[ShardAt{moved.Hash, moved.Peer}] != 1 || x[ShardAt{moved.Hash, to}] != 1 {
		t.Fatalf("after the repair: %v, want once on %s (blob b) and once on %s", x, moved.Peer, to)
	}

	// Blob b goes: its placement of the moved shard is no longer placed anywhere.
	if deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: []string{mb.Hash}}).([]string); len(deleted) != 1 {
		t.Fatalf("deleted %v", deleted)
	}
	x = a.shardIndex()
	if x.placedOn(moved.Hash, moved.Peer) || !x.placedOn(moved.Hash, to) {
		t.Fatalf("after deleting b: %v", x)
	}
	var unused []ShardAt
	a.fsm.View(func(l *Ledger) { unused = l.UnusedShards([]string{mb.Hash}, map[string]*storage.Manifest{mb.Hash: mb}) })
	if want := []ShardAt{{moved.Hash, moved.Peer}}; !slices.Equal(unused, want) {
		t.Fatalf("GC would delete %v, want only %v", unused, want)
	}

	restored := snapshotInto(t, a.fsm)
	restored.View(func(l *Ledger) {
		if !reflect.DeepEqual(l.placed, x) {
			t.Fatalf("restored index %v, want %v", l.placed, x)
		}
	})

	a.apply(&DeleteBlobsCommand{Hashes: []string{ma.Hash}})
	if x = a.shardIndex(); len(x) != 0 {
		t.Fatalf("every blob deleted, index still %v", x)
	}
}
