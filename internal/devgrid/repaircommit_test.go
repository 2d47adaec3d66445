package devgrid

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
)

// heartbeatingPeers keeps storage peers registered with the grid
// as storage-only peers (as a server's storage peer heartbeats), except
// those the test silences, and hands over the repair orders the leader
// gives them instead of carrying them out, so a test commits repairs
// itself.
type heartbeatingPeers struct {
	mu     sync.Mutex
	silent map[string]bool
	orders chan api.RepairOrder
}

// shardPeer is a storage peer serving a real ShardStore over HTTP that
// lets every request through: these tests are of what the leader commits,
// not of who a peer obeys (worker.shardAuth's tests are).
type shardPeer struct {
	id  string
	srv *httptest.Server
}

func startShardPeers(t *testing.T, n int) ([]*shardPeer, map[string]storage.ShardPeer) {
	var peers []*shardPeer
	conns := map[string]storage.ShardPeer{}
	for i := range n {
		store, err := storage.OpenShardStore(t.TempDir(), storage.ShardStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(storage.NewShardHandler(store, storage.TokenAuth("")))
		t.Cleanup(srv.Close)
		p := &shardPeer{id: fmt.Sprintf("p%d", i), srv: srv}
		peers = append(peers, p)
		conns[p.id] = storage.NewShardClient(srv.URL, "", srv.Client())
	}
	return peers, conns
}

func startHeartbeats(t *testing.T, c *client.Client, peers []*shardPeer) *heartbeatingPeers {
	h := &heartbeatingPeers{silent: map[string]bool{}, orders: make(chan api.RepairOrder, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, p := range peers {
		wg.Go(func() {
			for ctx.Err() == nil {
				h.mu.Lock()
				silent := h.silent[p.id]
				h.mu.Unlock()
				if !silent {
					resp, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: p.id, Address: p.srv.URL, Storage: true, StorageOnly: true, Held: []api.TaskRef{}})
					if err == nil {
						for _, o := range resp.Repairs {
							h.orders <- o
						}
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	return h
}

func (h *heartbeatingPeers) silence(id string) {
	h.mu.Lock()
	h.silent[id] = true
	h.mu.Unlock()
}

// TestGrid_RepairCommitNeedsItsNewHolderToProveIt: with a storage peer
// down past the grace, the leader orders a repair; a commit that moves the
// lost shard to a target that never received it is refused (409, the new
// holder did not prove it), and the real repair, the shard rebuilt onto a
// target, is committed, and the blob reads back.
func TestGrid_RepairCommitNeedsItsNewHolderToProveIt(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A 3 s TTL, not 1: under -race at load 14 a peer's heartbeat (every
	// 100 ms) once went unanswered for over a second between "seven live"
	// and the put, which then found 5 live peers of the 6 it needs.
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: 3 * time.Second,
		RepairGrace: time.Second, Logger: quiet, GCGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peers, conns := startShardPeers(t, 7)
	hb := startHeartbeats(t, c, peers)
	testcluster.Eventually(t, 10*time.Second, "seven storage peers live", func() bool {
		peers, err := c.StoragePeers(ctx, false)
		return err == nil && len(peers) == 7
	})
	data := randomBytes(100<<10, 51)
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}
	victim := m.Segments[0].Shards[0]
	hb.silence(victim.Peer)
	for _, p := range peers {
		if p.id == victim.Peer {
			p.srv.Close()
		}
	}
	var order api.RepairOrder
	select {
	case order = <-hb.orders:
	case <-ctx.Done():
		t.Fatal("no repair ordered for the lost shard")
	}
	if order.Blob != hash {
		t.Fatalf("order %+v, want one for %s", order, hash)
	}
	spare := spareTarget(m, order)
	if spare == "" {
		t.Fatalf("no target of %v holds no shard of the segment", order.Targets)
	}
	forged := m.Clone()
	forged.Segments[0].Shards[0].Peer = spare // never uploaded there
	if err := c.CommitRepair(ctx, forged); !isConflict(err, "did not prove") {
		t.Fatalf("a repair whose new holder has nothing: %v, want 409 saying it did not prove it", err)
	}
	fixed, err := storage.Repair(ctx, m, order.Lost, []string{spare}, conns, storage.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CommitRepair(ctx, fixed); err != nil {
		t.Fatalf("the real repair: %v", err)
	}
	got, err := c.Manifest(ctx, hash)
	if err != nil || got.Segments[0].Shards[0].Peer != spare {
		t.Fatalf("manifest after the repair: %+v %v, want segment 0 shard 0 on %s", got, err, spare)
	}
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read after the repair: %v", err)
	}
}

// spareTarget is a target of the order that holds no shard of segment 0.
func spareTarget(m *storage.Manifest, o api.RepairOrder) string {
	holds := map[string]bool{}
	for _, sh := range m.Segments[0].Shards {
		holds[sh.Peer] = true
	}
	for _, p := range o.Targets {
		if !holds[p] {
			return p
		}
	}
	return ""
}

// TestGrid_LeaderAuditFindsAPeerThatHoldsNothing: a storage peer that
// heartbeats and takes shards but keeps none (a real HTTP server answering
// 200 to everything) is found by the leader's audit, with no reader
// involved: the leader orders the repair of exactly its shards.
func TestGrid_LeaderAuditFindsAPeerThatHoldsNothing(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: time.Second,
		RepairGrace: time.Hour, AuditInterval: 100 * time.Millisecond, Logger: quiet, GCGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peers, conns := startShardPeers(t, 5)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(liar.Close)
	peers = append(peers, &shardPeer{id: "liar", srv: liar})
	conns["liar"] = storage.NewShardClient(liar.URL, g.Token, liar.Client())
	hb := startHeartbeats(t, c, peers)
	var refs []storage.PeerRef
	for _, p := range peers {
		refs = append(refs, storage.PeerRef{ID: p.id, Addr: p.srv.URL})
	}
	data := randomBytes(300<<10, 61)
	m, err := storage.Put(ctx, bytes.NewReader(data), storage.PutOptions{K: 4, M: 2, SegmentSize: 128 << 10, Peers: refs,
		Dial: func(r storage.PeerRef) storage.ShardPeer { return conns[r.ID] }})
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "six storage peers live", func() bool {
		live, err := c.StoragePeers(ctx, false)
		return err == nil && len(live) == 6
	})
	if err := c.PutManifest(ctx, m, true); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-hb.orders:
		if o.Blob != m.Hash || len(o.Lost) == 0 {
			t.Fatalf("order %+v, want one for %s", o, m.Hash)
		}
		for _, loc := range o.Lost {
			if p := m.Segments[loc.Segment].Shards[loc.Index].Peer; p != "liar" {
				t.Fatalf("the audit reported %s on honest peer %s", loc, p)
			}
		}
	case <-ctx.Done():
		t.Fatal("the audit never found the liar's shards")
	}
}
