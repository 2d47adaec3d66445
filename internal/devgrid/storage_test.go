package devgrid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

type idleRunner struct{}

func (idleRunner) Run(ctx context.Context, _ *wasm.Request) (*wasm.Result, error) {
	return &wasm.Result{}, nil
}

// storageGrid is a dev server plus n workers that are storage peers and
// run no real tasks.
func storageGrid(t *testing.T, n int, opts ...func(*Config)) (*Grid, []func()) {
	g, stops, _ := storageGridWith(t, n, idleRunner{}, opts...)
	return g, stops
}

// noRepair keeps a grid from rebuilding lost shards during a test that
// looks at them lost (a repair would move them: the grace is twice the
// test's one-second worker TTL, which a loaded machine can outlast).
func noRepair(c *Config) { c.RepairGrace = time.Hour }

// gcGrace is how old an unused blob must be before the test grids collect
// it: long, except in the garbage-collection test, so a slow (-race) upload
// of a job's inputs cannot lose its module before the submit.
var gcGrace = time.Hour

// storageGridWith is storageGrid with the workers' runner (nil: the real
// executor pool, one executor each).
func storageGridWith(t *testing.T, n int, runner worker.Runner, opts ...func(*Config)) (*Grid, []func(), []string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: time.Second, Logger: quiet,
		GCInterval: 100 * time.Millisecond, GCGrace: gcGrace}
	for _, o := range opts {
		o(&cfg)
	}
	g, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	var stops []func()
	var dirs []string
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		w, err := worker.New(context.Background(), worker.Config{ID: fmt.Sprintf("p%d", i), Client: g.Client(), DataDir: dir,
			Cores: 1, Pool: runner, StorageBind: "127.0.0.1:0", Heartbeat: 200 * time.Millisecond, DrainGrace: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		stop := func() { cancel(); <-done; w.Close() }
		t.Cleanup(stop)
		stops = append(stops, stop)
	}
	testcluster.Eventually(t, 10*time.Second, "every storage peer registered", func() bool {
		peers, err := g.Client().StoragePeers(context.Background(), false)
		return err == nil && len(peers) == n
	})
	return g, stops, dirs
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestGrid_BlobsSurviveLosingMStoragePeers: a blob put through the grid is
// erasure-coded onto the workers' shard stores, reads back byte for byte, and
// still does after m of them are killed; stat names the lost shards.
func TestGrid_BlobsSurviveLosingMStoragePeers(t *testing.T) {
	g, stops := storageGrid(t, 6, noRepair)
	c := g.Client()
	ctx := context.Background()
	sizes := []int{0, 1, storage.DefaultInlineThreshold, storage.DefaultInlineThreshold + 1, 1 << 20, 9<<20 + 7}
	hashes := make([]string, len(sizes))
	for i, n := range sizes {
		data := randomBytes(n, uint64(i+1))
		h, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(n), client.BlobOptions{Pin: true})
		if err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		if h != storage.Hash(data) {
			t.Fatalf("put %d bytes: hash %s, want %s", n, h, storage.Hash(data))
		}
		hashes[i] = h
	}
	stops[0]()
	stops[3]()
	down := map[string]bool{"p0": true, "p3": true}
	for i, n := range sizes {
		var buf bytes.Buffer
		if _, err := c.ReadBlob(ctx, hashes[i], &buf); err != nil {
			t.Fatalf("read %d bytes with 2 peers down: %v", n, err)
		}
		if !bytes.Equal(buf.Bytes(), randomBytes(n, uint64(i+1))) {
			t.Fatalf("read %d bytes: content differs", n)
		}
	}
	st, err := c.StatBlob(ctx, hashes[len(hashes)-1])
	if err != nil {
		t.Fatal(err)
	}
	if st.Inline || st.K != 4 || st.M != 2 || len(st.Segments) != 3 {
		t.Fatalf("stat: %+v", st)
	}
	for _, seg := range st.Segments {
		seen := map[string]bool{}
		for _, sh := range seg.Shards {
			if seen[sh.Peer] {
				t.Fatalf("two shards of one segment on %s", sh.Peer)
			}
			seen[sh.Peer] = true
			if sh.Healthy == down[sh.Peer] {
				t.Fatalf("shard %d on %s healthy=%v with peers %v down", sh.Index, sh.Peer, sh.Healthy, down)
			}
		}
	}
}

// TestGrid_JobWithLargeInputsAndResultsSurvivesLosingPeers: a job whose
// 1 MiB inputs and results are erasure-coded across the workers' storage
// completes with every result correct while m storage peers (workers too)
// are stopped mid-job.
func TestGrid_JobWithLargeInputsAndResultsSurvivesLosingPeers(t *testing.T) {
	const peers, n = 8, 12
	g, stops, _ := storageGridWith(t, peers, nil)
	dir := t.TempDir()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = randomBytes(1<<20, uint64(100+i))
		writeFile(t, filepath.Join(dir, "in", fmt.Sprintf("%02d.bin", i)), inputs[i])
	}
	writeFile(t, filepath.Join(dir, "cat.wasm"), wasmtest.Cat())
	writeFile(t, filepath.Join(dir, "job.toml"), []byte("name = \"cat\"\nmodule = \"cat.wasm\"\ninputs = \"in/*.bin\"\nmax_output = \"2MiB\"\nmemory = \"16MiB\"\nretries = 5\nerasure = { k = 3, m = 2 }\n"))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id, err := c.SubmitJobFile(ctx, jf)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, time.Minute, "some tasks done", func() bool {
		st, err := c.Job(ctx, id)
		return err == nil && st.Done >= 2
	})
	stops[1]()
	stops[5]()
	sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job: %+v %v", sum, err)
	}
	results, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	coded := 0
	for i, r := range results {
		if !bytes.Equal(r.Stdout, inputs[i]) {
			t.Fatalf("task %d: result of %d bytes differs from its input", i, len(r.Stdout))
		}
		if r.StdoutBlob != "" {
			coded++
		}
	}
	if coded == 0 {
		t.Fatal("no result went to the storage peers: the test is not testing erasure-coded results")
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Spec.Inputs {
		m, err := c.Manifest(ctx, in.Hash)
		if err != nil || m.K != 3 || m.M != 2 {
			t.Fatalf("input %s: want it erasure-coded 3+2 as the job says: %+v %v", in.Name, m, err)
		}
	}
	for _, r := range results {
		if r.StdoutBlob == "" {
			continue
		}
		if m, err := c.Manifest(ctx, r.StdoutBlob); err != nil || m.K != 3 || m.M != 2 {
			t.Fatalf("task %d result: want 3+2: %+v %v", r.Index, m, err)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitAllHealthy polls blob stat until every shard is healthy on a distinct
// live peer, none of them in gone.
func waitAllHealthy(t *testing.T, c *client.Client, hash string, gone map[string]bool) *client.BlobStat {
	t.Helper()
	var st *client.BlobStat
	testcluster.Eventually(t, 60*time.Second, "blob "+hash+" fully healthy again", func() bool {
		var err error
		if st, err = c.StatBlob(context.Background(), hash); err != nil {
			return false
		}
		for _, seg := range st.Segments {
			seen := map[string]bool{}
			for _, sh := range seg.Shards {
				if !sh.Healthy || gone[sh.Peer] || seen[sh.Peer] {
					return false
				}
				seen[sh.Peer] = true
			}
		}
		return true
	})
	return st
}

// TestGrid_CorruptShardIsDetectedAndRepaired: a shard corrupted on disk is
// detected on read, the read still succeeds, and the leader has a storage
// peer rebuild it.
func TestGrid_CorruptShardIsDetectedAndRepaired(t *testing.T) {
	g, _, dirs := storageGridWith(t, 6, idleRunner{})
	c := g.Client()
	ctx := context.Background()
	data := randomBytes(3<<20, 7)
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}
	victim := m.Segments[0].Shards[0] // a data shard: reads want it first
	var idx int
	fmt.Sscanf(victim.Peer, "p%d", &idx)
	store, err := storage.OpenShardStore(filepath.Join(dirs[idx], "shards"), storage.ShardStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store.Path(victim.Hash), []byte("rotten"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	faults, err := c.ReadBlob(ctx, hash, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read with a corrupt shard: %v", err)
	}
	if len(faults) == 0 || faults[0].Kind != storage.FaultCorrupt {
		t.Fatalf("the corrupt shard was not detected: %+v", faults)
	}
	waitAllHealthy(t, c, hash, nil)
	fixed, err := c.Manifest(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if got := fixed.Segments[0].Shards[0]; got.Hash != victim.Hash || got.Peer == victim.Peer && !storeHolds(store, victim.Hash) {
		t.Fatalf("shard not rewritten: %+v", got)
	}
}

func storeHolds(s *storage.ShardStore, hash string) bool {
	_, err := s.Get(context.Background(), hash)
	return err == nil
}

// TestGrid_RepairRestoresRedundancyAfterLosingMPeers: after m storage peers
// are gone for good, repair puts k+m healthy shards on distinct live peers.
func TestGrid_RepairRestoresRedundancyAfterLosingMPeers(t *testing.T) {
	g, stops, _ := storageGridWith(t, 8, idleRunner{})
	c := g.Client()
	ctx := context.Background()
	data := randomBytes(5<<20, 9)
	hash, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	stops[2]()
	stops[6]()
	waitAllHealthy(t, c, hash, map[string]bool{"p2": true, "p6": true})
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read after repair: %v", err)
	}
}

// TestGrid_PurgedJobsBlobsAreGarbageCollected: once a finished job is
// purged, its inputs and results (and their shards on the storage peers) are
// collected; a pinned blob stays until it is unpinned.
func TestGrid_PurgedJobsBlobsAreGarbageCollected(t *testing.T) {
	gcGrace = 5 * time.Second // not parallel: the other tests see the hour
	defer func() { gcGrace = time.Hour }()
	g, _, dirs := storageGridWith(t, 6, nil)
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pinned := randomBytes(1<<20, 42)
	pinnedHash, _, err := c.PutBlobFrom(ctx, bytes.NewReader(pinned), int64(len(pinned)), client.BlobOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	input := randomBytes(1<<20, 43)
	writeFile(t, filepath.Join(dir, "in", "a.bin"), input)
	writeFile(t, filepath.Join(dir, "cat.wasm"), wasmtest.Cat())
	writeFile(t, filepath.Join(dir, "job.toml"), []byte("name = \"cat\"\nmodule = \"cat.wasm\"\ninputs = \"in/*.bin\"\nmax_output = \"2MiB\"\n"))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	id := runCatJob(ctx, t, c, jf, [][]byte{input})
	st, _ := c.Job(ctx, id)
	results, _ := c.Results(ctx, id)
	inputM, err := c.Manifest(ctx, st.Spec.Inputs[0].Hash)
	if err != nil || results[0].StdoutBlob == "" {
		t.Fatalf("want a coded input and result: %v %+v", err, results[0].TaskStatus)
	}
	if err := c.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, "the purged job's blobs collected", func() bool {
		_, e1 := c.Manifest(ctx, st.Spec.Inputs[0].Hash)
		_, e2 := c.Manifest(ctx, results[0].StdoutBlob)
		return errors.Is(e1, client.ErrNotFound) && errors.Is(e2, client.ErrNotFound)
	})
	testcluster.Eventually(t, 20*time.Second, "their shards deleted from the peers", func() bool {
		for _, seg := range inputM.Segments {
			for _, sh := range seg.Shards {
				var idx int
				fmt.Sscanf(sh.Peer, "p%d", &idx)
				if _, err := os.Stat(filepath.Join(dirs[idx], "shards")); err != nil {
					return false
				}
				store, err := storage.OpenShardStore(filepath.Join(dirs[idx], "shards"), storage.ShardStoreOptions{})
				if err != nil {
					return false
				}
				if ok, _ := store.Has(sh.Hash); ok {
					return false
				}
			}
		}
		return true
	})
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, pinnedHash, &buf); err != nil || !bytes.Equal(buf.Bytes(), pinned) {
		t.Fatalf("the pinned blob was collected: %v", err)
	}
	if err := c.Unpin(ctx, pinnedHash); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, "the unpinned blob collected", func() bool {
		_, err := c.Manifest(ctx, pinnedHash)
		return errors.Is(err, client.ErrNotFound)
	})
}
