// Package devgrid runs a whole grid in one process on loopback: one ledger
// server (a single-voter Raft group on disk), one worker and any number of
// storage-only peers, all reaching it over the real HTTP API. `peergrid dev`, `peergrid demo` and end-to-end tests
// use it; nothing in it is a stand-in for a part of the real grid.
package devgrid

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/worker"
)

// Config configures a dev grid.
type Config struct {
	DataDir string // required
	Bind    string // HTTP address; default 127.0.0.1:0 (any free port)
	// RaftBind defaults to the HTTP port + 1 when Bind names a port, else any free port.
	RaftBind string
	Cores    int           // worker slots; default the machine's cores
	NoWorker bool          // server only
	Prefetch int           // tasks leased beyond Cores (worker default when 0)
	Worker   worker.Runner // overrides the worker's executor pool (tests)
	// WorkerTTL and LeaseSlack tune failure detection (default: scheduler's).
	WorkerTTL  time.Duration
	LeaseSlack time.Duration
	// GCInterval and GCGrace tune blob garbage collection (default: scheduler's).
	GCInterval, GCGrace time.Duration
	// RepairGrace is how long a storage peer is down before its shards are
	// rebuilt elsewhere (default: scheduler's, twice WorkerTTL).
	RepairGrace time.Duration
	// AuditInterval is how often the leader challenges stored shards
	// (default: scheduler's).
	AuditInterval time.Duration
	// InlineThreshold: blobs this size or smaller live inline in the ledger
	// (default: scheduler's, storage.DefaultInlineThreshold).
	InlineThreshold int64
	// StoragePeers is how many storage-only peers (shards, no tasks) run
	// beside the worker, so a dev grid can erasure-code blobs: with the
	// worker, k+m = 6 peers need 5.
	StoragePeers int
	// PlainHTTP serves the API without TLS and runs the peers' shard
	// service in the clear: only for measuring what TLS costs
	// (BenchmarkThroughput_Tiny100k's -plain runs); peergrid itself always
	// speaks TLS. Raft stays mutual TLS.
	PlainHTTP bool
	Logger    *slog.Logger
}

// Grid is a running dev grid.
type Grid struct {
	Addr     string // http://host:port
	RaftAddr string // host:port of Raft traffic
	// CAFingerprint pins the grid's CA (what PEERGRID_CA_FINGERPRINT says).
	CAFingerprint string
	Token         string
	Server        *server.Server
	Worker        *worker.Worker
	// Storage are the storage-only peers (Config.StoragePeers), by index.
	Storage []*StoragePeer

	http     *http.Server
	plain    bool // Config.PlainHTTP
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start brings up the server, waits for it to lead, and starts the worker.
func Start(ctx context.Context, cfg Config) (*Grid, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	token, err := auth.LoadOrCreateToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Bind, err)
	}
	raftBind, err := raftAddr(cfg.Bind, cfg.RaftBind)
	if err != nil {
		ln.Close()
		return nil, err
	}
	scheme := "https://"
	if cfg.PlainHTTP {
		scheme = "http://"
	}
	srv, err := server.NewServer(server.ServerConfig{
		Store: store.Config{ID: "dev-server", DataDir: filepath.Join(cfg.DataDir, "server"), RaftBind: raftBind,
			Fast: true},
		GCInterval: cfg.GCInterval, GCGrace: cfg.GCGrace, InlineThreshold: cfg.InlineThreshold, RepairGrace: cfg.RepairGrace, AuditInterval: cfg.AuditInterval,
		Token: token, BootstrapExpect: 1, HTTPAddr: scheme + ln.Addr().String(), WorkerTTL: cfg.WorkerTTL, LeaseSlack: cfg.LeaseSlack, Logger: cfg.Logger,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	g := &Grid{Addr: scheme + ln.Addr().String(), RaftAddr: raftBind, Token: token, Server: srv,
		CAFingerprint: auth.Fingerprint(srv.CA()), plain: cfg.PlainHTTP}
	g.http = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	g.http.RegisterOnShutdown(srv.CloseStreams)
	if !cfg.PlainHTTP {
		ln = tls.NewListener(server.StreamListener(ln), srv.APITLS())
	}
	go g.http.Serve(ln)
	if err := g.waitLeader(ctx); err != nil {
		g.Close()
		return nil, err
	}
	if !cfg.NoWorker {
		if err := g.startWorker(ctx, cfg); err != nil {
			g.Close()
			return nil, err
		}
	}
	for i := range cfg.StoragePeers {
		p, err := g.startStoragePeer(ctx, cfg, i)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.Storage = append(g.Storage, p)
	}
	if err := g.waitStoragePeers(ctx, cfg); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// waitStoragePeers waits until every storage peer started (the worker and
// the storage-only ones) is registered live, so a put right after Start
// sees them all.
func (g *Grid) waitStoragePeers(ctx context.Context, cfg Config) error {
	want := cfg.StoragePeers
	if !cfg.NoWorker {
		want++
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := g.Client()
	for {
		peers, err := c.StoragePeers(ctx, false)
		if err == nil && len(peers) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dev grid: %d storage peers registered, want %d: %w", len(peers), want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StoragePeer is one of a dev grid's storage-only peers.
type StoragePeer struct {
	ID      string
	DataDir string
	w       *worker.Worker
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// Stop takes the peer off the grid, as if its machine went away: it stops
// serving shards and heartbeating. Its shards stay in DataDir.
func (p *StoragePeer) Stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		p.w.Close()
	})
}

func (g *Grid) startStoragePeer(ctx context.Context, cfg Config, i int) (*StoragePeer, error) {
	p := &StoragePeer{ID: fmt.Sprintf("dev-storage-%d", i+1), DataDir: filepath.Join(cfg.DataDir, fmt.Sprintf("storage-%d", i+1)), done: make(chan struct{})}
	c, cert, err := g.peerClient(ctx, p.DataDir, p.ID)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(ctx, worker.Config{ID: p.ID, Client: c, DataDir: p.DataDir, NoTasks: true, ShardTLS: cert,
		StorageBind: "127.0.0.1:0", Heartbeat: heartbeatFor(cfg.WorkerTTL), Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("storage peer %s: %w", p.ID, err)
	}
	p.w = w
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { defer close(p.done); _ = w.Run(rctx) }()
	return p, nil
}

func (g *Grid) waitLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !g.Server.Store().IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("dev server did not become leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// peerClient is a client with the worker's own credential: enrolled with
// the grid's operator token on first start, kept in dataDir after.
// It also returns the certificate the worker serves its shards with.
func (g *Grid) peerClient(ctx context.Context, dataDir, id string) (*client.Client, *tls.Certificate, error) {
	if g.plain {
		// No TLS to present a certificate on, and a worker's credential is
		// refused without its certificate: the baseline's workers use the
		// operator token (the same lookup per request).
		return g.Client(), nil, nil
	}
	cred, err := worker.Enroll(ctx, g.Client(), dataDir, id, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	c := g.ClientWith(cred.Secret)
	cert, err := worker.ShardTLS(dataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	if cert != nil {
		c.Identify(cert)
	}
	c.WorkerStream = true // as an agent's worker speaks
	return c, cert, nil
}

func (g *Grid) startWorker(ctx context.Context, cfg Config) error {
	dir := filepath.Join(cfg.DataDir, "worker")
	c, cert, err := g.peerClient(ctx, dir, "dev-worker")
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, worker.Config{
		ID: "dev-worker", Client: c, DataDir: dir, Cores: cfg.Cores, ShardTLS: cert,
		Pool: cfg.Worker, Logger: cfg.Logger, Heartbeat: heartbeatFor(cfg.WorkerTTL), Prefetch: cfg.Prefetch,
		StorageBind: "127.0.0.1:0",
	})
	if err != nil {
		return err
	}
	g.Worker = w
	wctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(1)
	go func() { defer g.wg.Done(); _ = w.Run(wctx) }()
	return nil
}

func heartbeatFor(ttl time.Duration) time.Duration {
	if ttl > 0 {
		return ttl / 3
	}
	return 0
}

// Client returns an API client for this grid, with its operator token.
func (g *Grid) Client() *client.Client { return g.ClientWith(g.Token) }

// ClientWith returns an API client for this grid with another credential,
// pinned to the grid's CA as every client is.
func (g *Grid) ClientWith(token string) *client.Client {
	c := client.New(g.Addr, token)
	c.Pin(auth.Pin{Fingerprint: g.CAFingerprint})
	return c
}

// Close drains the worker, then stops the HTTP server and the ledger.
func (g *Grid) Close() error {
	g.once.Do(func() {
		for _, p := range g.Storage { // all at once: none repairs onto one that is stopping
			p.cancel()
		}
		for _, p := range g.Storage {
			p.Stop()
		}
		if g.cancel != nil {
			g.cancel()
			g.wg.Wait()
		}
		var errs []error
		if g.Worker != nil {
			errs = append(errs, g.Worker.Close())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs = append(errs, g.http.Shutdown(ctx), g.Server.Close())
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// raftAddr is the Raft bind: explicit, else the HTTP port + 1, else any free port.
func raftAddr(bind, raftBind string) (string, error) {
	if raftBind != "" {
		return raftBind, nil
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("bind %q: %w", bind, err)
	}
	if p, _ := strconv.Atoi(port); p > 0 {
		return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
