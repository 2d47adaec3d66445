package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/wasm"
)

// Config configures a worker.
type Config struct {
	ID      string
	Address string // how others reach this peer (informational for now)
	Client  *api.Client
	DataDir string // modules/ and compile/ caches live here, and inputs/ (stored inputs being run; emptied at start)
	// Cores is how many tasks run at once (default: the machine's cores).
	Cores int
	// Prefetch is how many tasks beyond Cores are leased ahead, so a slot
	// never waits on a lease round trip. 0 adapts it to the tasks: enough to
	// cover prefetchHorizon of work at the average task duration seen so far
	// (short tasks get a deep queue, long ones none beyond Cores, so one
	// worker does not hoard work another could start). Negative means none.
	Prefetch int
	// Heartbeat is how often the worker says it is alive while idle or busy.
	Heartbeat time.Duration
	// DrainGrace bounds how long running tasks may finish after a stop.
	DrainGrace time.Duration
	// LeaseWait is how long one lease call may long-poll.
	LeaseWait time.Duration
	Logger    *slog.Logger
	// Engines restricts the WebAssembly engines this worker offers (nil: all
	// the binary has, see wasm.AvailableEngines).
	Engines []string
	// StorageBind, when set, makes the worker a storage peer too: it keeps
	// erasure-coded shards under DataDir/shards and serves them on this
	// address (host:port; port 0 picks one). StorageAdvertise is the URL
	// other peers use (default http://<the bound address>, or, bound to
	// every interface, the local IP that routes to the servers).
	StorageBind      string
	StorageAdvertise string
	// Pool overrides the executor pool (tests); nil makes one with Cores executors.
	Pool Runner
	// NoTasks makes a storage-only peer (a server's, `agent --server
	// --storage`): it needs StorageBind, keeps and serves shards, takes
	// repair orders and sweeps, but never leases and starts no executors.
	NoTasks bool
	// A storage peer sweeps orphan shards (see storage.ShardStore.Sweep):
	// first SweepDelay after start (default 2m), then every SweepInterval
	// (default 10m; negative: never). SweepGrace (default 1h) protects young
	// shards, whose put or repair may not have committed its manifest yet:
	// keep it well above the longest put.
	SweepInterval, SweepDelay, SweepGrace time.Duration
}

// Runner runs one task: the executor pool, or a fake in tests.
type Runner interface {
	Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error)
}

var _ Runner = (*wasm.Pool)(nil)

// gridAPI is what a worker asks of the grid: every call it makes, and all
// it knows of the ledger. The API client is the one implementation outside
// tests, which use a fake.
type gridAPI interface {
	// Leasing, reporting and liveness.
	Lease(ctx context.Context, req *api.LeaseRequest) ([]api.Assignment, error)
	Report(ctx context.Context, req *api.ReportRequest) ([]bool, error)
	Release(ctx context.Context, req *api.ReleaseRequest) error
	Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error)
	// Blobs: modules and inputs read, large results stored.
	ReadBlob(ctx context.Context, hash string, w io.Writer) ([]storage.ShardFault, error)
	PutBlobFrom(ctx context.Context, r io.Reader, size int64, opts api.BlobOptions) (string, *storage.Manifest, error)
	ClusterStorage(ctx context.Context) (api.StorageConfig, error)
	// A storage peer's repairs and sweeps.
	Manifest(ctx context.Context, hash string) (*storage.Manifest, error)
	PutManifest(ctx context.Context, m *storage.Manifest, pin bool) error
	ShardPeers(ctx context.Context) (map[string]storage.ShardPeer, error)
	PlacedShards(ctx context.Context, peer string, shards []string) ([]string, error)
	// Addrs lists the servers, to which a shard service's advertised address routes.
	Addrs() []string
}

var _ gridAPI = (*api.Client)(nil)

func (c *Config) setDefaults() {
	if c.Cores <= 0 {
		c.Cores = runtime.NumCPU()
	}
	c.Prefetch = min(c.Prefetch, maxPrefetch)
	if c.Heartbeat <= 0 {
		c.Heartbeat = 3 * time.Second
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = 30 * time.Second
	}
	if c.LeaseWait <= 0 {
		c.LeaseWait = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// reportLinger is how long a report batch waits for more finished tasks:
// fewer, larger reports mean fewer Raft entries on the leader.
const reportLinger = 5 * time.Millisecond

const (
	maxPrefetch     = 512
	prefetchHorizon = 250 * time.Millisecond
)

// Worker leases, runs and reports tasks.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	client  gridAPI
	token   string // the cluster token the shard service asks of other peers
	modules wasm.ModuleDir
	pool    Runner
	ownPool *wasm.Pool
	engines []string // what it tells the grid it can run

	fetchMu  sync.Mutex // one module download at a time; they are cached after
	repairMu sync.Mutex // one repair at a time
	have     sync.Map   // module hashes known to be in modules/ (files never change): a task costs no stat

	shards     *storage.ShardStore
	shardHTTP  *http.Server
	shardsAddr string
}

// New prepares a worker: its caches and, unless given one, its executor pool.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if cfg.ID == "" || cfg.Client == nil || cfg.DataDir == "" {
		return nil, errors.New("worker: ID, Client and DataDir are required")
	}
	return newWorker(ctx, cfg, cfg.Client, cfg.Client.Token)
}

// newWorker is New with the grid API given apart from the config, so tests
// can give a fake; token is the cluster token shard requests must carry.
func newWorker(ctx context.Context, cfg Config, client gridAPI, token string) (*Worker, error) {
	cfg.setDefaults()
	w := &Worker{cfg: cfg, log: cfg.Logger.With("peer", cfg.ID), client: client, token: token,
		modules: wasm.ModuleDir(filepath.Join(cfg.DataDir, "modules"))}
	if err := os.MkdirAll(string(w.modules), 0o700); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if cfg.NoTasks {
		return w.startStorageOnly()
	}
	if err := w.resetInputs(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.pool = cfg.Pool
	if w.pool == nil {
		p, err := wasm.NewPool(ctx, wasm.PoolConfig{
			Size: cfg.Cores, CacheDir: filepath.Join(cfg.DataDir, "compile"), ModuleDir: w.modules, Logger: cfg.Logger,
			Engines: cfg.Engines,
		})
		if err != nil {
			return nil, fmt.Errorf("worker: executor pool: %w", err)
		}
		w.pool, w.ownPool = p, p
		w.engines = p.Engines()
	} else {
		w.engines = cfg.Engines
		if len(w.engines) == 0 {
			w.engines = wasm.AvailableEngines()
		}
	}
	if cfg.StorageBind != "" {
		if err := w.serveShards(); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// serveShards opens the shard store and serves it to other peers.
func (w *Worker) serveShards() error {
	store, err := storage.OpenShardStore(filepath.Join(w.cfg.DataDir, "shards"), storage.ShardStoreOptions{Logger: w.log})
	if err != nil {
		return fmt.Errorf("worker: shard store: %w", err)
	}
	ln, err := net.Listen("tcp", w.cfg.StorageBind)
	if err != nil {
		return fmt.Errorf("worker: storage listener on %s: %w", w.cfg.StorageBind, err)
	}
	w.shards = store
	w.shardsAddr = w.cfg.StorageAdvertise
	if w.shardsAddr == "" {
		w.shardsAddr = shardURL(ln.Addr(), w.client.Addrs())
	}
	w.shardHTTP = &http.Server{Handler: storage.NewShardHandler(store, w.token), ReadHeaderTimeout: 10 * time.Second}
	go w.shardHTTP.Serve(ln)
	w.log.Info("storage peer serving shards", "address", w.shardsAddr)
	return nil
}

// StorageAddr is where this worker serves shards ("" if it does not).
func (w *Worker) StorageAddr() string { return w.shardsAddr }

// address is what the worker tells the grid to reach it by.
func (w *Worker) address() string {
	if w.shardsAddr != "" {
		return w.shardsAddr
	}
	return w.cfg.Address
}

// Close stops the shard service and the executor pool the worker made.
func (w *Worker) Close() error {
	var errs []error
	if w.shardHTTP != nil {
		errs = append(errs, w.shardHTTP.Close())
	}
	if w.ownPool != nil {
		errs = append(errs, w.ownPool.Close())
	}
	return errors.Join(errs...)
}

// Run works until ctx is cancelled, then drains and returns nil. It returns
// an error only if the worker could not work at all.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("worker started", "cores", w.cfg.Cores)
	r := newRun(w)
	r.start(ctx)
	<-ctx.Done()
	r.drain()
	w.log.Info("worker stopped")
	return nil
}

// run is one Run's goroutines and their shared state.
type run struct {
	w       *Worker
	queue   chan api.Assignment
	reports chan api.Report
	slots   *slots       // tasks leased and not yet reported or handed back
	avgNs   atomic.Int64 // moving average of task run time, 0 until one ran
	ttl     atomic.Int64 // the server's worker TTL, from heartbeat answers

	workCtx    context.Context // cancelled when the drain grace ends: kills running tasks
	workCancel context.CancelFunc
	leaseStop  context.CancelFunc
	leasing    sync.WaitGroup
	runners    sync.WaitGroup
	reporting  sync.WaitGroup
	repairs    sync.WaitGroup
	draining   chan struct{}

	mu      sync.Mutex
	running map[api.TaskRef]context.CancelFunc // attempts being run now
	held    map[api.TaskRef]bool               // every lease held, until reported or handed back
}

func newRun(w *Worker) *run {
	capacity := w.cfg.Cores + maxPrefetch
	return &run{
		w: w, queue: make(chan api.Assignment, capacity), reports: make(chan api.Report, capacity),
		slots: newSlots(), draining: make(chan struct{}),
		running: map[api.TaskRef]context.CancelFunc{}, held: map[api.TaskRef]bool{},
	}
}

func (r *run) start(ctx context.Context) {
	r.workCtx, r.workCancel = context.WithCancel(context.Background())
	leaseCtx, cancel := context.WithCancel(ctx)
	r.leaseStop = cancel
	r.leasing.Add(1)
	go func() { defer r.leasing.Done(); r.heartbeatLoop(leaseCtx) }()
	r.startSweep(leaseCtx)
	if r.w.cfg.NoTasks {
		return
	}
	r.leasing.Add(1)
	go func() { defer r.leasing.Done(); r.leaseLoop(leaseCtx) }()
	for i := 0; i < r.w.cfg.Cores; i++ {
		r.runners.Add(1)
		go func() { defer r.runners.Done(); r.runLoop() }()
	}
	r.reporting.Add(1)
	go func() { defer r.reporting.Done(); r.reportLoop() }()
}

// drain stops leasing, hands back tasks not yet started, lets running ones
// finish within the grace period (then kills them and hands them back too),
// and sends every report.
func (r *run) drain() {
	r.w.log.Info("draining", "grace", r.w.cfg.DrainGrace)
	r.leaseStop()
	r.leasing.Wait()
	close(r.draining)
	r.sendHeartbeat(context.Background(), true)
	close(r.queue)
	for a := range r.queue { // hand back what no runner started, now, not after the running ones
		r.handBack(a)
	}
	done := make(chan struct{})
	go func() { r.runners.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.w.cfg.DrainGrace):
		r.w.log.Warn("drain grace over: stopping running tasks")
		r.workCancel()
		<-done
	}
	r.workCancel() // also stops a repair in progress
	r.repairs.Wait()
	close(r.reports)
	r.reporting.Wait()
}

// leaseLoop keeps the queue full: it leases as many tasks as there are free
// slots, long-polling when the grid has nothing queued.
func (r *run) leaseLoop(ctx context.Context) {
	backoff := newBackoff()
	for ctx.Err() == nil {
		free := r.acquireSlots(ctx)
		if free == 0 {
			return
		}
		got, err := r.w.client.Lease(ctx, &api.LeaseRequest{
			Worker: r.w.cfg.ID, Address: r.w.address(), Cores: r.w.cfg.Cores, Max: free, Wait: r.w.cfg.LeaseWait, Engines: r.w.engines,
			Storage: r.w.shards != nil,
		})
		r.releaseSlots(free - len(got))
		if err != nil {
			if ctx.Err() == nil {
				r.w.log.Warn("lease failed", "err", err)
				backoff.wait(ctx)
			}
			continue
		}
		backoff.reset()
		for _, a := range got {
			r.hold(refOf(a), true)
			r.queue <- a // never blocks: a slot was taken for it
		}
	}
}

// acquireSlots blocks until fewer tasks are held than the target, then
// takes every slot up to it.
func (r *run) acquireSlots(ctx context.Context) int {
	return r.slots.acquire(ctx, r.target, r.w.cfg.Cores)
}

func (r *run) releaseSlots(n int) { r.slots.release(n) }

// target is how many tasks to hold: one per core plus the prefetch.
func (r *run) target() int {
	cores, pf := r.w.cfg.Cores, r.w.cfg.Prefetch
	switch {
	case pf < 0:
		return cores
	case pf > 0:
		return cores + pf
	}
	avg := time.Duration(r.avgNs.Load())
	if avg <= 0 {
		return 2 * cores
	}
	return cores + min(max(int(prefetchHorizon/avg)*cores, cores), maxPrefetch)
}

// observe folds one task's run time into the moving average.
func (r *run) observe(d time.Duration) {
	d = max(d, time.Microsecond)
	for {
		old := r.avgNs.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if r.avgNs.CompareAndSwap(old, next) {
			return
		}
	}
}

func (r *run) runLoop() {
	for a := range r.queue {
		select {
		case <-r.draining:
			r.handBack(a)
			continue
		default:
		}
		ref := api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
		ctx := r.track(ref)
		began := time.Now()
		rep := r.execute(ctx, a)
		r.observe(time.Since(began))
		stopped := ctx.Err() != nil
		r.untrack(ref)
		switch {
		case r.workCtx.Err() != nil: // killed by the end of a drain: not the task's fault
			r.handBack(a)
		case stopped: // stopped because its lease is gone: nobody wants the result
			r.w.log.Info("stopped a task whose lease is gone", "job", a.Job, "task", a.Index)
			r.hold(ref, false)
			r.releaseSlots(1)
		default:
			r.reports <- rep
		}
	}
}

func (r *run) track(ref api.TaskRef) context.Context {
	ctx, cancel := context.WithCancel(r.workCtx)
	r.mu.Lock()
	r.running[ref] = cancel
	r.mu.Unlock()
	return ctx
}

func (r *run) untrack(ref api.TaskRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel, ok := r.running[ref]; ok {
		cancel()
		delete(r.running, ref)
	}
}

func refOf(a api.Assignment) api.TaskRef {
	return api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
}

// hold records a lease as held (or no longer held).
func (r *run) hold(ref api.TaskRef, held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if held {
		r.held[ref] = true
	} else {
		delete(r.held, ref)
	}
}

// heldRefs lists the leases held, never nil: an empty list says "none".
func (r *run) heldRefs() []api.TaskRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	refs := make([]api.TaskRef, 0, len(r.held))
	for ref := range r.held {
		refs = append(refs, ref)
	}
	return refs
}

func (r *run) runningRefs() []api.TaskRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	refs := make([]api.TaskRef, 0, len(r.running))
	for ref := range r.running {
		refs = append(refs, ref)
	}
	return refs
}

// stopStale stops attempts the server says are no longer this worker's.
func (r *run) stopStale(stale []api.TaskRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ref := range stale {
		if cancel, ok := r.running[ref]; ok {
			cancel()
		}
	}
}

// execute runs one assignment and turns the outcome into a report.
func (r *run) execute(ctx context.Context, a api.Assignment) api.Report {
	rep := api.Report{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
	if err := r.w.ensureModule(ctx, a.ModuleHash); err != nil {
		rep.ErrorKind, rep.Error = moduleErrorKind(err), err.Error()
		return rep
	}
	req := &wasm.Request{
		ModuleHash: a.ModuleHash, Name: a.Name, Args: a.Args, Env: a.Env, Seed: a.Seed, Engine: a.Engine,
		Limits: wasm.Limits{MemoryBytes: a.Memory, Timeout: a.Timeout, MaxOutput: int64(a.MaxOutput)},
	}
	if a.InputHash == "" {
		req.Stdin = a.Stdin // inline: small
	} else {
		path, err := r.w.fetchInput(ctx, a)
		if err != nil {
			rep.ErrorKind, rep.Error = "worker", err.Error()
			return rep
		}
		defer r.w.removeInput(path) // on every path, a panic included (removing twice is harmless)
		req.StdinPath = path
	}
	res, err := r.w.pool.Run(ctx, req)
	if req.StdinPath != "" {
		r.w.removeInput(req.StdinPath) // the run is over: free the disk before storing the result
	}
	if res != nil {
		rep.ExitCode, rep.Stdout, rep.Stderr, rep.Duration, rep.Engine = res.ExitCode, res.Stdout, res.Stderr, res.Duration, res.Engine
		r.w.storeLargeStdout(ctx, &rep, api.BlobOptions{K: a.K, M: a.M})
	}
	if err != nil {
		rep.ErrorKind, rep.Error = string(wasm.KindOf(err)), err.Error()
		if rep.ErrorKind == "" {
			rep.ErrorKind = "worker"
		}
	}
	return rep
}

// handBack releases a task this worker will not run.
func (r *run) handBack(a api.Assignment) {
	err := r.w.client.Release(context.Background(), &api.ReleaseRequest{
		Worker: r.w.cfg.ID, Tasks: []api.TaskRef{{Job: a.Job, Index: a.Index, Attempt: a.Attempt}},
	})
	if err != nil {
		r.w.log.Warn("hand back failed; the lease will expire instead", "job", a.Job, "task", a.Index, "err", err)
	}
	r.hold(refOf(a), false)
	r.releaseSlots(1)
}

// reportLoop sends reports in batches: whatever finished while the previous
// call was in flight goes in the next one.
func (r *run) reportLoop() {
	for first := range r.reports {
		batch := []api.Report{first}
		linger := time.NewTimer(reportLinger)
	gather:
		for len(batch) < 256 {
			select {
			case rep, ok := <-r.reports:
				if !ok {
					break gather
				}
				batch = append(batch, rep)
			case <-linger.C:
				break gather
			}
		}
		linger.Stop()
		r.sendReports(batch)
		for _, rep := range batch {
			r.hold(api.TaskRef{Job: rep.Job, Index: rep.Index, Attempt: rep.Attempt}, false)
		}
		r.releaseSlots(len(batch))
	}
}

// sendReports retries until the grid takes the reports or the attempt is
// hopeless (then the leases expire and the tasks run again).
func (r *run) sendReports(batch []api.Report) {
	backoff := newBackoff()
	for attempt := 0; attempt < 10; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := r.w.client.Report(ctx, &api.ReportRequest{Worker: r.w.cfg.ID, Reports: batch})
		cancel()
		if err == nil {
			return
		}
		r.w.log.Warn("report failed", "tasks", len(batch), "err", err)
		backoff.wait(context.Background())
	}
	r.w.log.Error("giving up on reports; their leases will expire", "tasks", len(batch))
}

func (r *run) heartbeatLoop(ctx context.Context) {
	if r.w.cfg.NoTasks { // it never leases: register now, not a heartbeat later
		r.sendHeartbeat(ctx, false)
	}
	t := time.NewTicker(r.w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sendHeartbeat(ctx, false)
		}
	}
}

// sendHeartbeat bounds each call by half the server's TTL once known, so a
// call stuck on a dead server cannot make the worker miss its TTL.
func (r *run) sendHeartbeat(ctx context.Context, draining bool) {
	timeout := min(10*time.Second, max(2*r.w.cfg.Heartbeat, time.Second))
	if ttl := time.Duration(r.ttl.Load()); ttl > 0 {
		timeout = min(timeout, ttl/2)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := r.w.client.Heartbeat(ctx, r.heartbeatRequest(draining))
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.w.log.Warn("heartbeat failed", "err", err)
		}
		return
	}
	r.ttl.Store(int64(resp.TTL))
	r.stopStale(resp.Stale)
	for _, o := range resp.Repairs {
		r.startRepair(o)
	}
}

// startRepair runs a repair order in the background, one at a time: fetch
// k shards of each damaged segment, rebuild the lost ones onto other live
// peers, and commit the new manifest.
func (r *run) startRepair(o api.RepairOrder) {
	r.repairs.Add(1)
	go func() {
		defer r.repairs.Done()
		r.w.repairMu.Lock()
		defer r.w.repairMu.Unlock()
		if err := r.w.repair(r.workCtx, o); err != nil {
			// A peer on its way out expects its repairs to fail (the grid
			// around it may be stopping too); the leader plans them again.
			log := r.w.log.Warn
			select {
			case <-r.draining:
				log = r.w.log.Info
			default:
			}
			log("repair failed", "blob", o.Blob, "err", err)
		}
	}()
}

func (w *Worker) repair(ctx context.Context, o api.RepairOrder) error {
	m, err := w.client.Manifest(ctx, o.Blob)
	if err != nil {
		return err
	}
	peers, err := w.client.ShardPeers(ctx)
	if err != nil {
		return err
	}
	fixed, rerr := storage.Repair(ctx, m, o.Lost, o.Targets, peers, storage.RepairOptions{})
	if fixed == nil {
		return rerr
	}
	if err := w.client.PutManifest(ctx, fixed, false); err != nil {
		return errors.Join(rerr, err)
	}
	w.log.Info("repaired blob", "blob", o.Blob, "shards", len(o.Lost), "partial", rerr != nil)
	return rerr
}

// inputsDir holds the stored inputs of the tasks being run, one file each.
func (w *Worker) inputsDir() string { return filepath.Join(w.cfg.DataDir, "inputs") }

// resetInputs empties the inputs directory: whatever is there was left by a
// worker that stopped without cleaning up, and no task of this one uses it.
func (w *Worker) resetInputs() error {
	if err := os.RemoveAll(w.inputsDir()); err != nil {
		return err
	}
	return os.MkdirAll(w.inputsDir(), 0o700)
}

// partialSuffix marks an input file still being written: it is never run.
const partialSuffix = ".part"

// fetchInput streams a task's erasure-coded input from the storage peers
// (ReadBlob: any k verified shards of each segment) into a file under
// inputsDir, so that an input of any size costs the worker a few segments
// of memory, not its size, and returns the file's path for the task's
// stdin. The file is written under a temporary name and renamed only once
// the whole blob was read and its hash checked (ReadBlob checks it at the
// end): a failed or partial read is removed, never run. The caller removes
// the file with removeInput once the task ran.
func (w *Worker) fetchInput(ctx context.Context, a api.Assignment) (string, error) {
	f, err := os.CreateTemp(w.inputsDir(), fmt.Sprintf("%.16s-*%s", a.InputHash, partialSuffix))
	if err != nil {
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	tmp := f.Name()
	faults, err := w.client.ReadBlob(ctx, a.InputHash, f)
	for _, fault := range faults {
		w.log.Warn("input shard fault", "job", a.Job, "task", a.Index, "segment", fault.Segment, "shard", fault.Index, "peer", fault.Peer, "kind", fault.Kind)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.removeInput(tmp)
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	path := strings.TrimSuffix(tmp, partialSuffix)
	if err := os.Rename(tmp, path); err != nil {
		w.removeInput(tmp)
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	return path, nil
}

// removeInput deletes an input file; failing to is only worth a warning
// (the next start empties the directory).
func (w *Worker) removeInput(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("cannot remove an input file", "path", path, "err", err)
	}
}

// storeLargeStdout pushes a stdout over the cluster's inline threshold to
// the storage peers and reports its manifest instead of the bytes, so large
// results never funnel through the leader. With too few storage peers it
// stays inline (the server still bounds it). A failed run's stdout is kept
// the same way: it is what a user debugging the failure reads.
func (w *Worker) storeLargeStdout(ctx context.Context, rep *api.Report, opts api.BlobOptions) {
	if len(rep.Stdout) == 0 { // every threshold is > 0
		return
	}
	opts.InlineThreshold = w.inlineThreshold(ctx)
	if int64(len(rep.Stdout)) <= opts.InlineThreshold {
		return
	}
	h, m, err := w.client.PutBlobFrom(ctx, bytes.NewReader(rep.Stdout), int64(len(rep.Stdout)), opts)
	if err != nil || m == nil {
		if err != nil && !errors.Is(err, storage.ErrNotEnoughPeers) {
			w.log.Warn("storing a large result on storage peers failed; sending it inline", "job", rep.Job, "task", rep.Index, "err", err)
		}
		return
	}
	rep.Stdout, rep.StdoutBlob = nil, h
}

// ensureModule fetches a module by hash into the module cache, once,
// verifying its hash (and header: a module that is not WebAssembly is an
// invalid_module error).
func (w *Worker) ensureModule(ctx context.Context, hash string) error {
	if _, ok := w.have.Load(hash); ok {
		return nil
	}
	if w.modules.Has(hash) {
		w.have.Store(hash, true)
		return nil
	}
	w.fetchMu.Lock()
	defer w.fetchMu.Unlock()
	if w.modules.Has(hash) {
		return nil
	}
	data, err := w.fetchModule(ctx, hash)
	if err != nil {
		return fmt.Errorf("fetch module %s: %w", hash, err)
	}
	got, err := w.modules.Put(data)
	if err != nil {
		return fmt.Errorf("module %s: %w", hash, err)
	}
	if got != hash {
		return fmt.Errorf("module %s: server sent bytes that hash to %s", hash, got)
	}
	w.have.Store(hash, true)
	return nil
}

// backoff waits 50ms, 100ms, ... up to 5s between failed calls.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, 5*time.Second)
}

// slots counts tasks held; acquire waits while the count is at the target.
type slots struct {
	mu    sync.Mutex
	held  int
	freed chan struct{} // closed and replaced on every release
}

func newSlots() *slots { return &slots{freed: make(chan struct{})} }

func (s *slots) acquire(ctx context.Context, target func() int, cores int) int {
	for {
		s.mu.Lock()
		t := target()
		n, freed := t-s.held, s.freed
		// Lease in batches: wait until a quarter of the target is free,
		// unless the worker is about to run dry.
		ok := n > 0 && (n >= t/4 || s.held <= 2*cores)
		if ok {
			s.held += n
		}
		s.mu.Unlock()
		if ok {
			return n
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return 0
		}
	}
}

func (s *slots) release(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.held -= n
	close(s.freed)
	s.freed = make(chan struct{})
	s.mu.Unlock()
}
