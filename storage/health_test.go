package storage_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
)

// liarPeer answers every shard request with 200 and an empty body: HEAD
// says it holds every shard, and it holds nothing.
func liarPeer(t *testing.T) *storage.ShardClient {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return storage.NewShardClient(srv.URL, "", srv.Client())
}

// wrongBytesPeer serves other bytes of the right size under every shard
// hash, and answers challenges honestly about those bytes.
func wrongBytesPeer(t *testing.T, size int) *storage.ShardClient {
	wrong := storagetest.RandomBytes(99, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/proof") {
			w.Write(wrong)
			return
		}
		chunk, _ := strconv.Atoi(r.URL.Query().Get("chunk"))
		p, err := storage.BuildProof(wrong, chunk)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(srv.Close)
	return storage.NewShardClient(srv.URL, "", srv.Client())
}

// TestHealth_VerifiesByContentNotHEAD is the "health trusts HEAD" attack: a
// fake peer that answers HEAD 200 and holds nothing, and one that holds
// other bytes, are reported unhealthy; honest peers are reported healthy.
// It holds for a manifest with proof roots (challenges) and for one
// without (whole shards fetched and hashed).
func TestHealth_VerifiesByContentNotHEAD(t *testing.T) {
	ctx := testContext(t)
	c := storagetest.NewCluster(t, 6)
	withRoots := mustPut(t, ctx, c, storagetest.RandomBytes(21, 2*testSegment))
	if withRoots.Segments[0].Shards[0].Root == "" {
		t.Fatal("Put wrote no proof roots")
	}
	noRoots := withRoots.Clone()
	for s := range noRoots.Segments {
		for i := range noRoots.Segments[s].Shards {
			noRoots.Segments[s].Shards[i].Root = ""
		}
	}
	liar := liarPeer(t)
	if has, err := liar.Has(ctx, withRoots.Segments[0].Shards[0].Hash); !has || err != nil {
		t.Fatalf("the liar's HEAD: %v %v, want it to claim the shard", has, err)
	}
	for name, m := range map[string]*storage.Manifest{"proof roots": withRoots, "no proof roots": noRoots} {
		peers := c.Clients()
		lied, wronged := m.Segments[0].Shards[0].Peer, m.Segments[1].Shards[1].Peer
		peers[lied] = liar
		peers[wronged] = wrongBytesPeer(t, int(m.ShardSize(1)))
		for _, h := range storage.Health(ctx, m, peers) {
			fake := h.Peer == lied || h.Peer == wronged
			if h.Healthy == fake || fake != (h.Err != nil) {
				t.Fatalf("%s: %v on %s (fake %v): healthy %v, err %v", name, h.ShardLoc, h.Peer, fake, h.Healthy, h.Err)
			}
		}
	}
}

// TestHealth_ChallengeMovesOneChunk: an honest holder proves a shard with
// proof roots by sending one chunk, not the shard.
func TestHealth_ChallengeMovesOneChunk(t *testing.T) {
	ctx := testContext(t)
	c := storagetest.NewCluster(t, 6)
	m := mustPut(t, ctx, c, storagetest.RandomBytes(22, testSegment))
	sh := m.Segments[0].Shards[0]
	p, err := c.Clients()[sh.Peer].(*storage.ShardClient).Prove(ctx, sh.Hash, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Data) != storage.ProofChunk || int64(len(p.Data)) >= m.ShardSize(0) {
		t.Fatalf("proof carries %d bytes of a %d-byte shard", len(p.Data), m.ShardSize(0))
	}
	if err := storage.VerifyProof(sh.Root, m.ShardSize(0), 1, p); err != nil {
		t.Fatal(err)
	}
}

// TestHealth_PeerWithoutChallengesIsCheckedWhole: a peer from before proofs
// (its router answers the challenge route with Go's plain 404) is checked
// by fetching its shard whole: healthy if the bytes are right, unhealthy
// if it holds nothing.
func TestHealth_PeerWithoutChallengesIsCheckedWhole(t *testing.T) {
	ctx := testContext(t)
	c := storagetest.NewCluster(t, 6)
	m := mustPut(t, ctx, c, storagetest.RandomBytes(23, testSegment))
	sh := m.Segments[0].Shards[0]
	oldPeer := func(holds bool) *storage.ShardClient {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/shards/{hash}", func(w http.ResponseWriter, r *http.Request) {
			data, err := c.Peer(sh.Peer).Store.Get(r.Context(), r.PathValue("hash"))
			if err != nil || !holds {
				http.Error(w, "shard not found", http.StatusNotFound)
				return
			}
			w.Write(data)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return storage.NewShardClient(srv.URL, "", srv.Client())
	}
	for _, holds := range []bool{true, false} {
		err := storage.CheckHolder(ctx, oldPeer(holds), sh, m.ShardSize(0))
		if (err == nil) != holds {
			t.Fatalf("old peer holding the shard %v: %v", holds, err)
		}
	}
}
