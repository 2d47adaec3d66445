package scheduler

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
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

// rebuiltIndex is the shard index computed afresh from the manifests.
func rebuiltIndex(l *Ledger) shardIndex {
	x := shardIndex{}
	for _, m := range l.manifests {
		x.add(m, +1)
	}
	return x
}

func (a *applier) shardIndex() shardIndex {
	var x shardIndex
	a.fsm.View(func(l *Ledger) {
		x = shardIndex{}
		for h, peers := range l.placed {
			x[h] = maps.Clone(peers)
		}
		if want := rebuiltIndex(l); !reflect.DeepEqual(x, want) {
			a.t.Fatalf("shard index %v differs from the manifests' %v", x, want)
		}
	})
	return x
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
	a.apply(cmdPutManifest, &PutManifestCommand{Manifest: ma, Now: 10})
	a.apply(cmdPutManifest, &PutManifestCommand{Manifest: mb, Now: 10})
	moved := ma.Segments[0].Shards[0]
	x := a.shardIndex()
	for _, seg := range ma.Segments {
		for _, sh := range seg.Shards {
			if x[sh.Hash][sh.Peer] != 2 {
				t.Fatalf("shard %s on %s counted %d times, want 2 (two blobs)", sh.Hash, sh.Peer, x[sh.Hash][sh.Peer])
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
	a.apply(cmdPutManifest, &PutManifestCommand{Manifest: fixed, Now: 20})
	x = a.shardIndex()
	to := fixed.Segments[0].Shards[0].Peer
	if x[moved.Hash][moved.Peer] != 1 || x[moved.Hash][to] != 1 {
		t.Fatalf("after the repair: %v, want once on %s (blob b) and once on %s", x[moved.Hash], moved.Peer, to)
	}

	// Blob b goes: its placement of the moved shard is no longer placed anywhere.
	if deleted, _ := a.apply(cmdDeleteBlobs, &DeleteBlobsCommand{Hashes: []string{mb.Hash}}).([]string); len(deleted) != 1 {
		t.Fatalf("deleted %v", deleted)
	}
	x = a.shardIndex()
	if x.placedOn(moved.Hash, moved.Peer) || !x.placedOn(moved.Hash, to) {
		t.Fatalf("after deleting b: %v", x[moved.Hash])
	}
	var unused []shardAt
	a.fsm.View(func(l *Ledger) { unused = l.unusedShards([]string{mb.Hash}, map[string]*storage.Manifest{mb.Hash: mb}) })
	if want := []shardAt{{moved.Hash, moved.Peer}}; !slices.Equal(unused, want) {
		t.Fatalf("GC would delete %v, want only %v", unused, want)
	}

	restored := snapshotInto(t, a.fsm)
	restored.View(func(l *Ledger) {
		if !reflect.DeepEqual(l.placed, x) {
			t.Fatalf("restored index %v, want %v", l.placed, x)
		}
	})

	a.apply(cmdDeleteBlobs, &DeleteBlobsCommand{Hashes: []string{ma.Hash}})
	if x = a.shardIndex(); len(x) != 0 {
		t.Fatalf("every blob deleted, index still %v", x)
	}
}

// TestPlacedShards_StaleIsIgnored: the placed-shards route drops ?stale=true
// before the read wrapper sees it, so a lagging follower never answers it
// from its own copy.
func TestPlacedShards_StaleIsIgnored(t *testing.T) {
	var got url.Values
	h := consistent(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Query() }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/storage/shards/placed?stale=true&x=1", nil))
	if got.Has("stale") || got.Get("x") != "1" {
		t.Fatalf("query after the wrapper: %v", got)
	}
}
