package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/wasm"
)

// testModule is the smallest bytes the module cache takes for WebAssembly
// (it checks the header only); the fake runner never runs it.
var (
	testModule     = []byte("\x00asm\x01\x00\x00\x00")
	testModuleHash = wasm.HashModule(testModule)
)

// call is one call a worker made to the fake grid.
type call struct {
	method  string // "Lease", "Report", "Release", "Heartbeat", "ReadBlob", "PutBlobFrom", "Manifest", "CommitRepair", "PlacedShards"
	at      time.Time
	timeout time.Duration // time the call's context had left when it came (0: no deadline)

	lease   *api.LeaseRequest
	granted []api.Assignment // what the Lease call returned
	report  *api.ReportRequest
	// carried marks a Report recorded for the reports a lease call
	// carried (recorded just before that Lease, as the server applies them).
	carried   bool
	release   *api.ReleaseRequest
	heartbeat *api.HeartbeatRequest
	hash      string // ReadBlob, PutBlobFrom, Manifest
	opts      client.BlobOptions
	manifest  *storage.Manifest
	peer      string
	shards    []string
}

// fakeGrid is the grid a worker sees through gridAPI, in memory: it leases
// the tasks a test queues (long-polling while there are none), answers as
// the test scripts it, and records every call in order.
type fakeGrid struct {
	// Scripted answers, set before the worker starts; nil means the default
	// (success). n counts earlier calls of the same method.
	leaseErr func(n int) error
	// oldServer makes a lease that carries reports fail as a server
	// before api.LeaseRequest.Reports refuses it: nothing applied.
	oldServer   bool
	onReport    func(n int, req *api.ReportRequest) ([]bool, error)
	onHeartbeat func(n int, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error)
	readErr     func(hash string, n int) error
	putErr      error
	onPut       func() // called as a blob put begins
	storageCfg  api.StorageConfig
	storageErr  error
	placed      func(hashes []string) []string
	shardPeers  map[string]storage.ShardPeer

	mu        sync.Mutex
	queued    []api.Assignment
	wake      chan struct{} // closed and replaced when tasks are queued
	calls     []call
	blobs     map[string][]byte
	manifests map[string]*storage.Manifest
}

var _ gridAPI = (*fakeGrid)(nil)

func newFakeGrid() *fakeGrid {
	return &fakeGrid{
		wake:      make(chan struct{}),
		blobs:     map[string][]byte{testModuleHash: testModule},
		manifests: map[string]*storage.Manifest{},
	}
}

// queue makes tasks available to Lease, in order.
func (g *fakeGrid) queue(tasks ...api.Assignment) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queued = append(g.queued, tasks...)
	close(g.wake)
	g.wake = make(chan struct{})
}

func (g *fakeGrid) putBlob(data []byte) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := storage.Hash(data)
	g.blobs[h] = data
	return h
}

// record appends a call (under g.mu) and returns its index and how many
// calls of the same method came before it.
func (g *fakeGrid) record(ctx context.Context, c call) (i, n int) {
	c.at = time.Now()
	if d, ok := ctx.Deadline(); ok {
		c.timeout = time.Until(d)
	}
	for _, old := range g.calls {
		if old.method == c.method {
			n++
		}
	}
	g.calls = append(g.calls, c)
	return len(g.calls) - 1, n
}

// callsOf returns the calls of one method so far, in order.
func (g *fakeGrid) callsOf(method string) []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []call
	for _, c := range g.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

// allCalls returns every call so far, in order.
func (g *fakeGrid) allCalls() []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

// LeaseWithReports applies the reports a lease carries, as Report would
// (recorded as a carried Report call), then leases as Lease does.
func (g *fakeGrid) LeaseWithReports(ctx context.Context, req *api.LeaseRequest) (*api.LeaseResponse, error) {
	var accepted []bool
	if len(req.Reports) > 0 {
		if g.oldServer {
			g.mu.Lock()
			g.record(ctx, call{method: "Lease", lease: req})
			g.mu.Unlock()
			return nil, fmt.Errorf("%w: unknown field \"reports\"", client.ErrReportsNotCarried)
		}
		var err error
		if accepted, err = g.report(ctx, &api.ReportRequest{Worker: req.Worker, Reports: req.Reports}, true); err != nil {
			return nil, err
		}
	}
	got, err := g.Lease(ctx, req)
	if err != nil {
		return nil, err
	}
	return &api.LeaseResponse{Tasks: got, Accepted: accepted}, nil
}

// Lease grants up to req.Max queued tasks; with none queued it waits for
// some, for req.Wait or for ctx, as the server long-polls.
func (g *fakeGrid) Lease(ctx context.Context, req *api.LeaseRequest) ([]api.Assignment, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i, n := g.record(ctx, call{method: "Lease", lease: req})
	if g.leaseErr != nil {
		if err := g.leaseErr(n); err != nil {
			return nil, err
		}
	}
	poll := time.NewTimer(req.Wait)
	defer poll.Stop()
	for len(g.queued) == 0 {
		wake, over := g.wake, false
		g.mu.Unlock()
		select {
		case <-wake:
		case <-poll.C:
			over = true
		case <-ctx.Done():
		}
		g.mu.Lock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if over && len(g.queued) == 0 {
			return nil, nil
		}
	}
	k := min(req.Max, len(g.queued))
	got := slices.Clone(g.queued[:k])
	g.queued = g.queued[k:]
	g.calls[i].granted = got
	return got, nil
}

func (g *fakeGrid) Report(ctx context.Context, req *api.ReportRequest) ([]bool, error) {
	return g.report(ctx, req, false)
}

func (g *fakeGrid) report(ctx context.Context, req *api.ReportRequest, carried bool) ([]bool, error) {
	g.mu.Lock()
	req = &api.ReportRequest{Worker: req.Worker, Reports: slices.Clone(req.Reports)}
	_, n := g.record(ctx, call{method: "Report", report: req, carried: carried})
	g.mu.Unlock()
	if g.onReport != nil {
		return g.onReport(n, req)
	}
	return slices.Repeat([]bool{true}, len(req.Reports)), nil
}

func (g *fakeGrid) Release(ctx context.Context, req *api.ReleaseRequest) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.record(ctx, call{method: "Release", release: req})
	return nil
}

func (g *fakeGrid) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	g.mu.Lock()
	_, n := g.record(ctx, call{method: "Heartbeat", heartbeat: req})
	g.mu.Unlock()
	if g.onHeartbeat != nil {
		return g.onHeartbeat(n, req)
	}
	return &api.HeartbeatResponse{}, nil
}

func (g *fakeGrid) ReadBlob(ctx context.Context, hash string, w io.Writer) ([]storage.ShardFault, error) {
	g.mu.Lock()
	_, n := g.record(ctx, call{method: "ReadBlob", hash: hash})
	data, ok := g.blobs[hash]
	g.mu.Unlock()
	if g.readErr != nil {
		if err := g.readErr(hash, n); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", hash, client.ErrNotFound)
	}
	_, err := w.Write(data)
	return nil, err
}

func (g *fakeGrid) PutBlobFrom(ctx context.Context, r io.Reader, size int64, opts client.BlobOptions) (string, *storage.Manifest, error) {
	if g.onPut != nil {
		g.onPut()
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return "", nil, err
	}
	if int64(len(data)) != size {
		return "", nil, fmt.Errorf("put blob: read %d bytes, told %d", len(data), size)
	}
	h := storage.Hash(data)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.record(ctx, call{method: "PutBlobFrom", hash: h, opts: opts})
	if g.putErr != nil {
		return "", nil, g.putErr
	}
	g.blobs[h] = data
	return h, &storage.Manifest{Hash: h, Size: size, K: opts.K, M: opts.M}, nil
}

func (g *fakeGrid) ClusterStorage(ctx context.Context) (api.StorageConfig, error) {
	return g.storageCfg, g.storageErr
}

func (g *fakeGrid) Manifest(ctx context.Context, hash string) (*storage.Manifest, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.record(ctx, call{method: "Manifest", hash: hash})
	m, ok := g.manifests[hash]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", hash, client.ErrNotFound)
	}
	return m.Clone(), nil
}

func (g *fakeGrid) CommitRepair(ctx context.Context, m *storage.Manifest) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.record(ctx, call{method: "CommitRepair", manifest: m.Clone()})
	g.manifests[m.Hash] = m.Clone()
	return nil
}

func (g *fakeGrid) ShardPeers(ctx context.Context) (map[string]storage.ShardPeer, error) {
	return g.shardPeers, nil
}

func (g *fakeGrid) PlacedShards(ctx context.Context, peer string, shards []string) ([]string, error) {
	g.mu.Lock()
	g.record(ctx, call{method: "PlacedShards", peer: peer, shards: slices.Clone(shards)})
	g.mu.Unlock()
	if g.placed == nil {
		return nil, nil
	}
	return g.placed(shards), nil
}

func (g *fakeGrid) ServerInfo(ctx context.Context) (*api.ServerInfo, error) {
	g.mu.Lock()
	g.record(ctx, call{method: "ServerInfo"})
	g.mu.Unlock()
	return &api.ServerInfo{ID: "srv", CA: string(auth.CertPEM(testGridCA().ca.Cert.Raw))}, nil
}

func (g *fakeGrid) Addrs() []string { return nil }

// fakeRunner stands for the executor pool. By default every run succeeds
// at once with "ok" on stdout; with a gate, a run waits for a token from it
// (or for its context to end, which it records as a cancellation). run, if
// set, replaces both.
type fakeRunner struct {
	gate chan struct{}
	run  func(ctx context.Context, req *wasm.Request) (*wasm.Result, error)

	mu        sync.Mutex
	reqs      []*wasm.Request
	cancelled []string // Names of the runs stopped by their context
}

var _ Runner = (*fakeRunner)(nil)

func (f *fakeRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.run != nil {
		return f.run(ctx, req)
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled = append(f.cancelled, req.Name)
			f.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	return &wasm.Result{Stdout: []byte("ok"), Engine: "fake"}, nil
}

// started lists the Names of the runs started so far, in order.
func (f *fakeRunner) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, len(f.reqs))
	for i, r := range f.reqs {
		names[i] = r.Name
	}
	return names
}

func (f *fakeRunner) cancelledNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cancelled)
}

// task is an assignment of the test module; its Name ("job/index") lets a
// fake runner tell runs apart.
func task(job string, index int) api.Assignment {
	return api.Assignment{Job: job, Index: index, Attempt: 1, ModuleHash: testModuleHash,
		Name: fmt.Sprintf("%s/%d", job, index), Timeout: time.Minute}
}

func tasksOf(job string, n int) []api.Assignment {
	out := make([]api.Assignment, n)
	for i := range out {
		out[i] = task(job, i)
	}
	return out
}

// testWorker makes a worker on the fake grid, with a quiet logger and its
// own data directory. A worker that runs tasks needs cfg.Pool.
func testWorker(t *testing.T, g *fakeGrid, cfg Config) *Worker {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "w1"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.DrainGrace == 0 {
		cfg.DrainGrace = 10 * time.Second // a test that forgets to open its gate fails, slowly
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	w, err := newWorker(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// running is a worker's Run in progress.
type running struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}
}

// runWorker starts w.Run; the test's cleanup stops it if the test did not.
func runWorker(t *testing.T, w *Worker) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); w.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop cancels Run (a SIGTERM) and waits for its drain to end.
func (r *running) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.t.Error("Run did not return within 20s of its stop")
	}
}

func (r *running) returned() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// refs lists the task refs of assignments.
func refs(as ...api.Assignment) []api.TaskRef {
	out := make([]api.TaskRef, len(as))
	for i, a := range as {
		out[i] = refOf(a)
	}
	return out
}

// sameRefs reports whether a and b hold the same refs, in any order.
func sameRefs(a, b []api.TaskRef) bool {
	cmp := func(x, y api.TaskRef) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}
