package devgrid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/worker"
)

// serverID is the dev grid server's id; its storage peer runs under it, as
// `peergrid agent --server --storage` does.
const serverID = "dev-server"

// peerGrid is a dev server without a worker, plus storage peers the test
// starts, stops and restarts by id.
type peerGrid struct {
	t     *testing.T
	g     *Grid
	quiet *slog.Logger
	peers map[string]*runningPeer
}

type runningPeer struct {
	cfg  worker.Config
	w    *worker.Worker
	stop func()
}

func newPeerGrid(t *testing.T, gcGrace time.Duration) *peerGrid {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A 5 s TTL against 200 ms heartbeats: with 1 s, a loaded CI machine
	// marked live peers down between waitStoragePeers and the first put.
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: 5 * time.Second, Logger: quiet,
		GCInterval: 100 * time.Millisecond, GCGrace: gcGrace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &peerGrid{t: t, g: g, quiet: quiet, peers: map[string]*runningPeer{}}
}

// start runs a storage peer (a worker with runner idleRunner unless
// cfg.NoTasks) in its own data dir, kept across restarts.
func (pg *peerGrid) start(cfg worker.Config) *runningPeer {
	pg.t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = pg.t.TempDir()
	}
	cfg.Client, cfg.Logger, cfg.StorageBind = pg.g.Client(), pg.quiet, "127.0.0.1:0"
	cfg.Cores, cfg.Heartbeat, cfg.DrainGrace = 1, 200*time.Millisecond, 100*time.Millisecond
	if !cfg.NoTasks {
		cfg.Pool = idleRunner{}
	}
	w, err := worker.New(context.Background(), cfg)
	if err != nil {
		pg.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stopped := false
	rp := &runningPeer{cfg: cfg, w: w, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			w.Close()
		}
	}}
	pg.t.Cleanup(rp.stop)
	pg.peers[cfg.ID] = rp
	return rp
}

func (pg *peerGrid) restart(id string) *runningPeer {
	pg.t.Helper()
	old := pg.peers[id]
	old.stop()
	cfg := old.cfg
	cfg.Pool = nil
	return pg.start(cfg)
}

func (pg *peerGrid) store(id string) *storage.ShardStore {
	pg.t.Helper()
	s, err := storage.OpenShardStore(filepath.Join(pg.peers[id].cfg.DataDir, "shards"), storage.ShardStoreOptions{})
	if err != nil {
		pg.t.Fatal(err)
	}
	return s
}

func (pg *peerGrid) waitStoragePeers(n int) {
	pg.t.Helper()
	testcluster.Eventually(pg.t, 60*time.Second, fmt.Sprintf("%d live storage peers", n), func() bool {
		peers, err := pg.g.Client().StoragePeers(context.Background(), false)
		return err == nil && len(peers) == n
	})
}

func (pg *peerGrid) put(data []byte) *storage.Manifest {
	pg.t.Helper()
	_, m, err := pg.g.Client().PutBlobFrom(context.Background(), bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		pg.t.Fatalf("put %d bytes: %v (manifest %v)", len(data), err, m != nil)
	}
	return m
}

func shardsOn(m *storage.Manifest, peer string) []string {
	var out []string
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			if sh.Peer == peer {
				out = append(out, sh.Hash)
			}
		}
	}
	return out
}

func findPeer(peers []api.Peer, id string) *api.Peer {
	for i := range peers {
		if peers[i].ID == id {
			return &peers[i]
		}
	}
	return nil
}

// TestGrid_ServerStoragePeerHoldsShardsAndRunsNoTasks: a server's
// storage-only peer (agent --server --storage) registers under the server's
// id without the worker role and keeping the server's API address, holds
// shards, keeps a blob readable with m other peers down, and is never
// leased a task while a job runs on the workers.
func TestGrid_ServerStoragePeerHoldsShardsAndRunsNoTasks(t *testing.T) {
	pg := newPeerGrid(t, time.Hour)
	sp := pg.start(worker.Config{ID: serverID, NoTasks: true})
	for i := 0; i < 5; i++ {
		pg.start(worker.Config{ID: fmt.Sprintf("p%d", i)})
	}
	pg.waitStoragePeers(6)
	c, ctx := pg.g.Client(), context.Background()

	data := randomBytes(9<<20, 11)
	m := pg.put(data)
	mine := shardsOn(m, serverID)
	if len(mine) != len(m.Segments) {
		t.Fatalf("the server's storage peer holds %d shards, want one of each of %d segments", len(mine), len(m.Segments))
	}
	for _, h := range mine {
		if ok, _ := pg.store(serverID).Has(h); !ok {
			t.Fatalf("shard %s placed on %s is not in its store", h, serverID)
		}
	}

	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := findPeer(peers, serverID)
	if p == nil || !slices.Equal(p.Roles, []string{api.RoleServer, api.RoleStorage}) || p.Address != pg.g.Addr {
		t.Fatalf("the server's line in peers: %+v (want roles server+storage at %s)", p, pg.g.Addr)
	}
	sps, _ := c.StoragePeers(ctx, false)
	if i := slices.IndexFunc(sps, func(s api.StoragePeer) bool { return s.ID == serverID }); i < 0 || sps[i].Address != sp.w.StorageAddr() {
		t.Fatalf("storage peers %+v: want %s at %s", sps, serverID, sp.w.StorageAddr())
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cat.wasm"), wasmtest.Cat())
	writeFile(t, filepath.Join(dir, "job.toml"), []byte("name = \"many\"\nmodule = \"cat.wasm\"\ntasks = 60\n"))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := c.SubmitJobFile(wctx, jf)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.WaitJob(wctx, id, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job: %+v %v", sum, err)
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.TaskStats {
		if ts.Worker == serverID || ts.Worker == "" {
			t.Fatalf("task %d ran on %q", ts.Index, ts.Worker)
		}
	}
	peers, _ = c.Peers(ctx)
	if p := findPeer(peers, serverID); p == nil || p.Done != 0 || p.Running != 0 || slices.Contains(p.Roles, api.RoleWorker) {
		t.Fatalf("the storage-only peer after the job: %+v", p)
	}

	pg.peers["p1"].stop()
	pg.peers["p3"].stop()
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, m.Hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read with p1 and p3 down: %v", err)
	}
}

// TestGrid_SilentServerStoragePeerIsMarkedDownAndRepaired: a server's
// storage peer that stops heartbeating is marked down like a worker, and
// the shards it held are rebuilt on another peer, while the server itself
// keeps serving.
func TestGrid_SilentServerStoragePeerIsMarkedDownAndRepaired(t *testing.T) {
	pg := newPeerGrid(t, time.Hour)
	pg.start(worker.Config{ID: serverID, NoTasks: true})
	for i := 0; i < 5; i++ {
		pg.start(worker.Config{ID: fmt.Sprintf("p%d", i)})
	}
	pg.waitStoragePeers(6)
	m := pg.put(randomBytes(3<<20, 12))
	if len(shardsOn(m, serverID)) == 0 {
		t.Fatal("the server's storage peer holds no shard: the test proves nothing")
	}
	pg.start(worker.Config{ID: "p5"}) // a spare to rebuild on
	pg.waitStoragePeers(7)
	pg.peers[serverID].stop()
	c, ctx := pg.g.Client(), context.Background()
	testcluster.Eventually(t, 60*time.Second, "the silent storage peer marked down", func() bool {
		peers, err := c.Peers(ctx)
		p := findPeer(peers, serverID)
		return err == nil && p != nil && p.State == api.PeerDown
	})
	waitAllHealthy(t, c, m.Hash, map[string]bool{serverID: true})
}

// TestGrid_SweepRemovesOrphanShards: the shards of a blob collected while
// one of its holders was down stay on that peer (the leader's delete could
// not reach it); once it is back, its sweep removes them, and keeps the
// shards a manifest still places on it and a young unplaced shard (a put
// whose manifest may not be committed yet).
func TestGrid_SweepRemovesOrphanShards(t *testing.T) {
	pg := newPeerGrid(t, 50*time.Millisecond)
	for i := 0; i < 6; i++ {
		pg.start(worker.Config{ID: fmt.Sprintf("p%d", i), SweepDelay: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	}
	pg.waitStoragePeers(6)
	c, ctx := pg.g.Client(), context.Background()
	gone := pg.put(randomBytes(1<<20, 21))
	kept := pg.put(randomBytes(1<<20, 22))
	orphans := shardsOn(gone, "p0")
	if len(orphans) == 0 || len(shardsOn(kept, "p0")) == 0 {
		t.Fatal("p0 holds no shard of a blob: the test proves nothing")
	}

	pg.peers["p0"].stop()
	if err := c.Unpin(ctx, gone.Hash); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, "the unpinned blob collected and its shards deleted from the live peers", func() bool {
		if _, err := c.Manifest(ctx, gone.Hash); !errors.Is(err, client.ErrNotFound) {
			return false
		}
		for i := 1; i < 6; i++ {
			p := fmt.Sprintf("p%d", i)
			for _, h := range shardsOn(gone, p) {
				if ok, _ := pg.store(p).Has(h); ok {
					return false
				}
			}
		}
		return true
	})
	p0 := pg.store("p0")
	for _, h := range orphans {
		if ok, _ := p0.Has(h); !ok {
			t.Fatalf("p0 lost shard %s while it was down", h)
		}
	}
	// Make everything p0 holds look older than the sweep's grace (1h), then
	// give it one fresh shard no manifest will ever place.
	held, err := p0.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, h := range held {
		if err := os.Chtimes(p0.Path(h), old, old); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := storage.Put(ctx, bytes.NewReader(randomBytes(1000, 23)), storage.PutOptions{K: 1, M: 0,
		Peers: []storage.PeerRef{{ID: "p0"}}, Dial: func(storage.PeerRef) storage.ShardPeer { return storage.LocalPeer{Store: p0} }})
	if err != nil {
		t.Fatal(err)
	}
	young := fresh.Segments[0].Shards[0].Hash

	pg.restart("p0")
	testcluster.Eventually(t, 20*time.Second, "p0's sweep removed the collected blob's shards", func() bool {
		for _, h := range orphans {
			if ok, _ := p0.Has(h); ok {
				return false
			}
		}
		return true
	})
	now, err := c.Manifest(ctx, kept.Hash)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range shardsOn(now, "p0") {
		if ok, _ := p0.Has(h); !ok {
			t.Fatalf("p0's sweep deleted shard %s that a manifest places on it", h)
		}
	}
	if ok, _ := p0.Has(young); !ok {
		t.Fatal("p0's sweep deleted a shard younger than the grace")
	}
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, kept.Hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), randomBytes(1<<20, 22)) {
		t.Fatalf("read the kept blob: %v", err)
	}
}
