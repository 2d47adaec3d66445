package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/wasm"
)

// Config configures a worker.
type Config struct {
	ID      string
	Address string // how others reach this peer (informational for now)
	Client  *client.Client
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
	// ShardTLS, when set, serves the shards over TLS with this certificate
	// (the worker's, of the cluster CA, with its chain: see Enroll).
	ShardTLS *tls.Certificate
	// ShardQuota bounds the bytes of shards this storage peer keeps; an
	// upload past it is refused with 507 (0: storage.DefaultShardQuota). A
	// volunteer's max_disk, when set, is the quota instead.
	ShardQuota int64
	// Pool overrides the executor pool (tests); nil makes one with Cores
	// executors. A Pool that is also a Pauser can be paused and throttled.
	Pool Runner
	// LowestPriority runs the executors at the lowest CPU priority (see
	// wasm.PoolConfig.LowestPriority): what a volunteer's worker wants.
	LowestPriority bool
	// Volunteer, if set, makes the worker obey its volunteer's preferences
	// (see volunteer.go); nil runs at full speed whenever there is work.
	Volunteer *Volunteer
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

var (
	_ Runner = (*wasm.Pool)(nil)
	_ Pauser = (*wasm.Pool)(nil)
)

// gridAPI is what a worker asks of the grid: every call it makes, and all
// it knows of the ledger. The API client is the one implementation outside
// tests, which use a fake.
type gridAPI interface {
	// Leasing, reporting and liveness.
	// LeaseWithReports leases, carrying finished reports (see
	// api.LeaseRequest.Reports); client.ErrReportsNotCarried says the
	// server is too old to take them.
	LeaseWithReports(ctx context.Context, req *api.LeaseRequest) (*api.LeaseResponse, error)
	Report(ctx context.Context, req *api.ReportRequest) ([]bool, error)
	Release(ctx context.Context, req *api.ReleaseRequest) error
	Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error)
	// Blobs: modules and inputs read, large results stored.
	ReadBlob(ctx context.Context, hash string, w io.Writer) ([]storage.ShardFault, error)
	PutBlobFrom(ctx context.Context, r io.Reader, size int64, opts client.BlobOptions) (string, *storage.Manifest, error)
	ClusterStorage(ctx context.Context) (api.StorageConfig, error)
	// A storage peer's repairs and sweeps.
	Manifest(ctx context.Context, hash string) (*storage.Manifest, error)
	CommitRepair(ctx context.Context, m *storage.Manifest) error
	ShardPeers(ctx context.Context) (map[string]storage.ShardPeer, error)
	PlacedShards(ctx context.Context, peer string, shards []string) ([]string, error)
	// ServerInfo names the cluster CA, for a storage peer serving without
	// a certificate that chains to it (shardAuth).
	ServerInfo(ctx context.Context) (*api.ServerInfo, error)
	// Addrs lists the servers, to which a shard service's advertised address routes.
	Addrs() []string
}

var _ gridAPI = (*client.Client)(nil)

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

// Worker leases, runs and reports tasks.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	client  gridAPI
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

	active    atomic.Pointer[run] // the Run in progress
	outputSeq atomic.Uint64       // names stdout files (see outputPath)
	disk      diskBudget          // max_disk
}

// New prepares a worker: its caches and, unless given one, its executor pool.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if cfg.ID == "" || cfg.Client == nil || cfg.DataDir == "" {
		return nil, errors.New("worker: ID, Client and DataDir are required")
	}
	return newWorker(ctx, cfg, cfg.Client)
}

// newWorker is New with the grid API given apart from the config, so tests
// can give a fake.
func newWorker(ctx context.Context, cfg Config, client gridAPI) (*Worker, error) {
	cfg.setDefaults()
	w := &Worker{cfg: cfg, log: cfg.Logger.With("peer", cfg.ID), client: client,
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
	if err := w.startPool(ctx); err != nil {
		return nil, err
	}
	if cfg.StorageBind != "" {
		if err := w.serveShards(); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// startPool starts the executor pool, unless the config gave a Runner, and
// learns the engines the worker offers.
func (w *Worker) startPool(ctx context.Context) error {
	cfg := w.cfg
	if cfg.Pool != nil {
		w.pool, w.engines = cfg.Pool, cfg.Engines
		if len(w.engines) == 0 {
			w.engines = wasm.AvailableEngines()
		}
		return nil
	}
	p, err := wasm.NewPool(ctx, wasm.PoolConfig{
		Size: cfg.Cores, CacheDir: filepath.Join(cfg.DataDir, "compile"), ModuleDir: w.modules, Logger: cfg.Logger,
		Engines: cfg.Engines, LowestPriority: cfg.LowestPriority,
	})
	if err != nil {
		return fmt.Errorf("worker: executor pool: %w", err)
	}
	w.pool, w.ownPool = p, p
	w.engines = p.Engines()
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
	if w.cfg.NoTasks {
		w.log.Info("storage-only peer started: keeps shards, runs no tasks")
	} else {
		w.log.Info("worker started", "cores", w.cfg.Cores)
	}
	r := newRun(w)
	w.active.Store(r)
	r.start(ctx)
	ctl := r.listenControl()
	<-ctx.Done()
	r.drain()
	if ctl != nil {
		ctl.Close()
	}
	if s, ok := w.client.(streamCloser); ok {
		s.CloseWorkerStream() // the leader need not wait for it to idle out
	}
	w.log.Info("worker stopped")
	return nil
}

// streamCloser is a client holding a worker stream (client.Client).
type streamCloser interface{ CloseWorkerStream() }

var _ streamCloser = (*client.Client)(nil)

// run is one Run's goroutines and their shared state.
type run struct {
	w       *Worker
	queue   chan api.Assignment // leased, not yet started (see lease.go, run.go)
	reports chan api.Report     // finished, not yet sent (see report.go)
	// pendingReports counts reports queued or in the batch being gathered;
	// reportsDue tells a lingering report loop its batch is due, and
	// lingerWakes counts how often it woke while lingering (see queueReport);
	// dueReports is the batch size that is due at once (0: none; see
	// reportLinger).
	pendingReports atomic.Int64
	reportsDue     chan struct{}
	lingerWakes    atomic.Int64
	dueReports     atomic.Int64
	// carry hands a batch of reports from the report loop to the lease
	// loop waiting for slots, whose call carries them; bounced hands back
	// those of a call that failed (see report.go). carryOffUntil (unix ns)
	// stops carrying for a while after an old server refused it.
	carry         chan []api.Report
	bounced       chan []api.Report
	carryOffUntil atomic.Int64
	slots         *slots       // tasks leased and not yet reported or handed back
	avgNs         atomic.Int64 // moving average of task run time, 0 until one ran
	ttl           atomic.Int64 // the server's worker TTL, from heartbeat answers
	// distrusted is whether the last heartbeat said the grid distrusts
	// this worker (logged on each change, see noteDistrust).
	distrusted atomic.Bool

	workCtx    context.Context // cancelled when the drain grace ends: kills running tasks
	workCancel context.CancelFunc
	leaseStop  context.CancelFunc
	leasing    sync.WaitGroup // the lease, heartbeat and sweep loops
	runners    sync.WaitGroup
	reporting  sync.WaitGroup
	repairs    sync.WaitGroup
	draining   chan struct{}

	mu      sync.Mutex
	running map[api.TaskRef]context.CancelFunc // attempts being run now (see held.go)
	held    map[api.TaskRef]bool               // every lease held, until reported or handed back
	// handingBack are running attempts stopped to be handed back (a pause
	// past pause_keep): their runner releases them instead of reporting.
	handingBack map[api.TaskRef]bool

	batches BatchRunner // the pool, if it runs batches (batch.go); else nil

	gate *gate      // closed while the volunteer's preferences stop the worker
	mem  *memBudget // max_memory
	vol  *volunteer // nil without a Volunteer config
}

func newRun(w *Worker) *run {
	capacity := w.cfg.Cores + maxPrefetch
	return &run{
		w: w, queue: make(chan api.Assignment, capacity), reports: make(chan api.Report, capacity),
		reportsDue: make(chan struct{}, 1),
		carry:      make(chan []api.Report), bounced: make(chan []api.Report, 4),
		slots: newSlots(), draining: make(chan struct{}),
		running: map[api.TaskRef]context.CancelFunc{}, held: map[api.TaskRef]bool{}, handingBack: map[api.TaskRef]bool{},
		gate: newGate(), mem: newMemBudget(), batches: batchRunnerOf(w.pool),
	}
}

// batchRunnerOf is the pool as a BatchRunner, or nil if it is not one.
func batchRunnerOf(pool Runner) BatchRunner {
	if b, ok := pool.(BatchRunner); ok {
		return b
	}
	return nil
}

// start starts the loops: heartbeats and sweeps on every peer; leasing, one
// runner per core and reporting on a peer that runs tasks. ctx stops the
// heartbeat, lease and sweep loops; drain stops the rest.
func (r *run) start(ctx context.Context) {
	r.workCtx, r.workCancel = context.WithCancel(context.Background())
	leaseCtx, cancel := context.WithCancel(ctx)
	r.leaseStop = cancel
	if cfg := r.w.cfg.Volunteer; cfg != nil && !r.w.cfg.NoTasks {
		// Before the heartbeats, which read it, and the first lease: a
		// worker started paused takes none.
		v := newVolunteer(r, *cfg)
		r.mu.Lock()
		r.vol = v
		r.mu.Unlock()
		v.step()
	}
	r.leasing.Add(1)
	go func() { defer r.leasing.Done(); r.heartbeatLoop(leaseCtx) }()
	r.startSweep(leaseCtx)
	if r.w.cfg.NoTasks {
		return
	}
	if r.vol != nil {
		r.leasing.Add(1)
		go func() { defer r.leasing.Done(); r.vol.loop(leaseCtx) }()
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
