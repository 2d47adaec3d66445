package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/storage"
)

// ServerConfig configures a ledger server.
type ServerConfig struct {
	Store store.Config
	// Token every API call must carry. Empty disables authentication (tests only).
	Token string
	// WorkerTTL: a worker unheard for this long is marked down and its leases
	// return to the queue. A new leader gives every worker one and a half
	// (newLeaderGrace).
	WorkerTTL time.Duration
	// LeaseSlack is added to a task's timeout to give its lease expiry.
	LeaseSlack time.Duration
	// MaxPauseKeep bounds how long a paused worker's leases are kept from
	// expiring (see pauses.go); default 1 hour.
	MaxPauseKeep time.Duration
	// MaxLeaseWait bounds a lease long poll.
	MaxLeaseWait time.Duration
	// HTTPAddr is this server's API address as other servers reach it
	// (http://host:port): followers forward writes to the leader's.
	HTTPAddr string
	// Join lists other servers' HTTP addresses to find the group through.
	Join []string
	// BootstrapExpect: with no Raft state yet, bootstrap a new group once
	// this many servers (this one included) know each other. 1 bootstraps
	// alone at once; 0 only joins an existing group.
	BootstrapExpect int
	// LeaderWait bounds how long a request waits for a leader before
	// "no cluster leader".
	LeaderWait time.Duration
	// RepairGrace is how long a storage peer may be down before the leader
	// rebuilds its shards elsewhere (default 2 x WorkerTTL); RepairTimeout
	// is how long a repair order may take before it is given to another peer.
	RepairGrace   time.Duration
	RepairTimeout time.Duration
	// AuditInterval is how often the leader challenges stored shards, one
	// random shard of each of up to AuditShards blobs per round (audit.go;
	// defaults 1 minute and 64; a negative interval turns it off).
	AuditInterval time.Duration
	AuditShards   int
	// GCInterval is how often the leader collects garbage blobs; GCGrace is
	// how old an unused, unpinned blob must be (so a blob uploaded for a job
	// still being submitted is safe). Defaults 1 minute and 1 hour.
	GCInterval, GCGrace time.Duration
	// StorageK and StorageM are the cluster's erasure coding (default 4+2);
	// a job may override them.
	StorageK, StorageM int
	// CAPin is the cluster CA a server joining a running grid trusts (by
	// fingerprint or certificate); servers forming a group together find it
	// with their shared Token instead (see tls.go).
	CAPin auth.Pin
	// InlineThreshold: blobs this size or smaller (bytes) live inline in the
	// ledger, larger ones are erasure-coded across the storage peers
	// (default storage.DefaultInlineThreshold; at most storage.MaxInline).
	// Clients and workers read it from GET /v1/storage/config.
	InlineThreshold int64
	// CommandTypes, when set, is what this server says it applies instead
	// of ledger.KnownCommandTypes(): a test stands in an older server with
	// it. The server's Apply still applies every type it knows.
	CommandTypes []int
	Logger       *slog.Logger
}

func (c *ServerConfig) setDefaults() {
	if c.WorkerTTL == 0 {
		c.WorkerTTL = 15 * time.Second
	}
	if c.LeaseSlack == 0 {
		c.LeaseSlack = 30 * time.Second
	}
	if c.MaxPauseKeep == 0 {
		c.MaxPauseKeep = time.Hour
	}
	if c.MaxLeaseWait == 0 {
		c.MaxLeaseWait = 30 * time.Second
	}
	if c.LeaderWait == 0 {
		// Shorter than a client's attempt timeout (5 s), so a client hears
		// "no cluster leader" and may try again within its 10 s bound.
		c.LeaderWait = 4 * time.Second
	}
	if c.RepairGrace == 0 {
		c.RepairGrace = 2 * c.WorkerTTL
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Minute
	}
	if c.GCGrace == 0 {
		c.GCGrace = time.Hour
	}
	if c.StorageK == 0 {
		c.StorageK, c.StorageM = storage.DefaultK, storage.DefaultM
	}
	if c.InlineThreshold == 0 {
		c.InlineThreshold = storage.DefaultInlineThreshold
	}
	if c.RepairTimeout == 0 {
		c.RepairTimeout = 5 * time.Minute
	}
	if c.AuditInterval == 0 {
		c.AuditInterval = time.Minute
	}
	if c.AuditShards <= 0 {
		c.AuditShards = 64
	}
	if c.BootstrapExpect == 1 {
		c.Store.Bootstrap = true
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Store.Logger == nil {
		c.Store.Logger = c.Logger
	}
}

// CheckInlineThreshold refuses an inline threshold that is not positive or
// is over what the ledger keeps inline (storage.MaxInline).
func CheckInlineThreshold(t int64) error {
	if t <= 0 || t > storage.MaxInline {
		return fmt.Errorf("inline threshold %d bytes: want more than 0 and at most %d (%d MiB, the largest inline blob)", t, storage.MaxInline, storage.MaxInline>>20)
	}
	return nil
}

// Server is one ledger server: the Store plus what only the leader keeps in
// memory (worker liveness) and its loops (lease expiry, dead workers).
type Server struct {
	cfg   ServerConfig
	store *store.Store
	log   *slog.Logger

	liveness *liveness
	// untracked is watchUntracked's last pass (the leader loop's own).
	untracked untrackedPass
	gate      *commandGate
	pauses    *pauses
	work      *notifier
	ready     atomic.Bool // leading, and caught up with the log (see establishLeadership)
	repairs   *repairPlanner
	metrics   *leaderMetrics // what this server did as leader (metrics.go)
	// forwarder carries a follower's requests to the leader, with the
	// client's connection bounds (see forward).
	forwarder *http.Transport
	handler   http.Handler // the API, the dashboard and /metrics
	dashboard *views.Dashboard
	tls       *tlsState // the cluster CA and this server's certificate (tls.go)
	// verifiedClients caches client certificates already checked (clientcert.go).
	verifiedClients  certCache
	shardHTTP        *http.Client // to storage peers, pinned to the CA
	engines          *gridEngines // the grid's engine per module, learned from reports (engines.go)
	streams          streamSet    // the worker streams open on this leader (stream.go)
	streamFrames     atomic.Int64 // requests served on worker streams (for tests)
	streamQuiet      atomic.Int64 // quiet heartbeats left unanswered (for tests)
	streamAuthCached atomic.Int64 // stream messages whose credential check stood (for tests)
	streamReadSkips  atomic.Int64 // reads a stream's reader did not make: its socket was drained (for tests)

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewServer opens the store and starts the leader watcher.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	if err := CheckInlineThreshold(cfg.InlineThreshold); err != nil {
		return nil, err
	}
	tlsState, err := openTLS(tlsDir(&cfg))
	if err != nil {
		return nil, err
	}
	cfg.Store.TLS = tlsState.raftTLS() // read at every handshake: a CA made or received later applies
	work := newNotifier()
	cfg.Store.OnApply = work.broadcast
	st, err := store.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	if !tlsState.certified() && cfg.BootstrapExpect == 1 && cfg.CAPin.IsZero() && aloneInGroup(st) {
		// A lone grid's server: its first start, or a ledger from before TLS.
		if err := tlsState.makeCA(cfg.Store.ID); err != nil {
			st.Close()
			return nil, fmt.Errorf("make the cluster CA: %w", err)
		}
	}
	s := &Server{cfg: cfg, store: st, log: cfg.Logger, liveness: newLiveness(), gate: newCommandGate(), pauses: newPauses(), work: work, stop: make(chan struct{}),
		repairs: newRepairPlanner(cfg.RepairGrace, cfg.RepairTimeout), metrics: newLeaderMetrics(), forwarder: client.NewTransport(), tls: tlsState}
	s.forwarder.TLSClientConfig = auth.ClientTLS(tlsState.pin, []string{auth.RoleServer}, tlsState.ownCert) // its certificate vouches for a worker's it verified (clientcert.go)
	s.shardHTTP = &http.Client{Transport: client.NewTransport()}
	s.engines = newGridEngines()
	s.shardHTTP.Transport.(*http.Transport).TLSClientConfig = auth.ClientTLS(tlsState.pin, []string{auth.RoleWorker, auth.RoleServer}, tlsState.ownCert) // its certificate lets it read shards
	s.handler = s.newRoutes()
	s.wg.Add(3)
	go s.watchLeadership()
	go s.joinLoop()
	go s.sampleThroughput()
	return s, nil
}

// Store returns the server's ledger store.
func (s *Server) Store() *store.Store { return s.store }

// Handler is the HTTP API, the dashboard and /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// CloseStreams ends every worker stream, saying the server shuts down, and
// accepts no more. Register it with http.Server.RegisterOnShutdown: a
// stream is a hijacked connection, which Shutdown neither closes nor
// counts as idle. Close calls it too.
func (s *Server) CloseStreams() {
	s.streams.endAll(fmt.Errorf("%w: the server is shutting down", errStreamNotLeader), true)
}

// Close stops the loops and the store.
func (s *Server) Close() error {
	s.CloseStreams()
	close(s.stop)
	s.wg.Wait()
	s.forwarder.CloseIdleConnections()
	return s.store.Close()
}

// sampleThroughput feeds the dashboard's charts (kept in this server's
// memory, never replicated) until the server closes.
func (s *Server) sampleThroughput() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.stop; cancel() }()
	s.dashboard.RunSampler(ctx)
}

// watchLeadership runs the leader loop while this server leads.
func (s *Server) watchLeadership() {
	defer s.wg.Done()
	var loop *runningLoop
	defer func() { loop.stop() }()
	for {
		select {
		case <-s.stop:
			return
		case isLeader := <-s.store.LeaderCh():
			if !isLeader {
				s.streams.endAll(errStreamNotLeader, false)
			}
			loop.stop()
			loop = nil
			if isLeader {
				loop = startLoop(s.leaderLoop)
			}
		}
	}
}

// runningLoop is a goroutine with its own cancel, stopped and waited for.
type runningLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLoop(fn func(context.Context)) *runningLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &runningLoop{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(l.done); fn(ctx) }()
	return l
}

func (l *runningLoop) stop() {
	if l != nil {
		l.cancel()
		<-l.done
	}
}

// leaderLoop expires leases and marks silent workers down. A new leader first
// treats every known worker as just seen, and expires nothing for
// newLeaderGrace: each worker has that long to find it.
func (s *Server) leaderLoop(ctx context.Context) {
	defer s.ready.Store(false)
	if !s.establishLeadership(ctx) {
		return
	}
	start := time.Now()
	s.liveness.resetAll(start, s.knownWorkers())
	s.ready.Store(true)
	s.registerAsLeader(ctx)
	s.registerClusterToken(ctx)
	graceUntil := start.Add(newLeaderGrace(s.cfg.WorkerTTL))
	s.log.Info("leader loop started", "id", s.cfg.Store.ID)
	tick := time.NewTicker(max(s.cfg.WorkerTTL/5, 10*time.Millisecond))
	defer tick.Stop()
	gc := time.NewTicker(s.cfg.GCInterval)
	defer gc.Stop()
	var gate sync.WaitGroup
	gctx, stopGate := context.WithCancel(ctx)
	gate.Go(func() { s.commandGateLoop(gctx) })
	defer gate.Wait()
	defer stopGate()
	if s.cfg.AuditInterval > 0 {
		var audits sync.WaitGroup
		actx, stop := context.WithCancel(ctx)
		audits.Go(func() { s.auditLoop(actx) })
		defer audits.Wait()
		defer stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-gc.C:
			s.collectGarbage(ctx, now)
		case now := <-tick.C:
			if now.Before(graceUntil) {
				continue
			}
			s.watchUntracked(now)
			s.markDeadWorkers(ctx, now)
			s.expireLeases(ctx, now)
			s.planRepairs(now)
		}
	}
}

// newLeaderGrace is how long a new leader marks no worker down and
// expires no lease: one TTL, as any worker gets between heartbeats, and
// half a TTL more for the move. A worker that last heard from the old
// leader just before it froze notices only when a heartbeat goes
// unanswered: its heartbeats go quiet (unanswered by design) while it
// heard the server within half a TTL (api/client's quietWithin), the next
// one that asks for an answer comes within a heartbeat period (a quarter
// TTL) after that, and it is hedged elsewhere HedgeAfter (1.5 s) later:
// up to three quarters of a TTL and 1.5 s. One TTL from the election
// left a quarter TTL minus 1.5 s of it, less than nothing at a TTL under
// 6 s: the nemesis suite (TTL 5 s) saw a healthy worker marked down
// after its leader was isolated (PEERGRID_NEMESIS_SEED=567147589). The
// price is a dead worker's tasks going back to the queue half a TTL later
// after a leader change.
func newLeaderGrace(ttl time.Duration) time.Duration { return ttl + ttl/2 }

// establishLeadership waits until this new leader has applied every entry
// committed before it took over (a Raft barrier), as Nomad does: until then
// its ledger may lag, and a read or a liveness check against it would be
// wrong. Requests wait for it (see Server.write).
func (s *Server) establishLeadership(ctx context.Context) bool {
	for ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.store.Barrier(bctx)
		cancel()
		if err == nil {
			return true
		}
		s.log.Warn("leader barrier failed", "err", err)
	}
	return false
}

// registerAsLeader records this server's HTTP address in the ledger at once
// if it is missing or changed: followers forward to the leader by it.
func (s *Server) registerAsLeader(ctx context.Context) {
	if s.cfg.HTTPAddr == "" || s.serverHTTPAddr(s.cfg.Store.ID) == s.cfg.HTTPAddr {
		return
	}
	s.propose(ctx, &ledger.UpsertPeerCommand{
		ID: s.cfg.Store.ID, Address: s.cfg.HTTPAddr, Roles: []string{api.RoleServer}, State: api.PeerAlive, Now: time.Now().UnixNano(),
	})
}

// awaitReady waits, bounded by LeaderWait, until this leader has caught up.
// A ready leader answers at once, with no timer or context: every write
// and consistent read asks, and building a deadline context for each was
// some 3% of a busy leader's CPU.
func (s *Server) awaitReady(ctx context.Context) bool {
	if s.ready.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	for !s.ready.Load() {
		if !s.store.IsLeader() {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

func (s *Server) knownWorkers() []string {
	var ids []string
	s.store.FSM().View(func(l *ledger.Ledger) { ids = l.HeartbeatingPeers() })
	return ids
}

// watchUntracked starts the liveness clock of a peer the ledger has alive
// that should heartbeat but this leader has not heard from (a server's
// registration marked its shared id alive again after its storage peer was
// marked down): unheard for a TTL from now, it is marked down again.
// After a pass every peer the ledger has alive is known, so the next is
// skipped while neither the ledger nor what liveness knows has lost any
// since (a pass lists every peer: at 10,000 workers it was 3% of a
// leader serving heartbeats).
func (s *Server) watchUntracked(now time.Time) {
	at := untrackedPass{changes: s.store.FSM().Changes(), forgets: s.liveness.forgotten()} // read first: a later change forces the next pass
	if !s.untracked.due(at) {
		return
	}
	s.liveness.touchUnknown(s.knownWorkers(), now)
	at.done = true
	s.untracked = at
}

// untrackedPass is when watchUntracked last listed the ledger's live
// peers: the ledger's FSM.Changes and liveness's forgotten count then.
// The zero value is due.
type untrackedPass struct {
	changes, forgets uint64
	done             bool
}

// due says whether a pass at now can find a peer the last did not: the
// ledger changed (a peer came alive) or liveness forgot one since.
func (last untrackedPass) due(now untrackedPass) bool {
	return !last.done || last.changes != now.changes || last.forgets != now.forgets
}

func (s *Server) markDeadWorkers(ctx context.Context, now time.Time) {
	for _, id := range s.liveness.silentSince(now.Add(-s.cfg.WorkerTTL)) {
		var leases []api.TaskRef
		s.store.FSM().View(func(l *ledger.Ledger) { leases = l.LeasesOf(id) })
		s.log.Warn("peer down", "peer", id, "leases", len(leases))
		if _, err := s.store.Propose(ctx, &ledger.UpsertPeerCommand{ID: id, State: api.PeerDown, Now: now.UnixNano()}); err != nil {
			s.log.Warn("mark worker down", "peer", id, "err", err)
			continue
		}
		s.metrics.peersMarkedDown.Inc() // metrics
		s.liveness.forget(id)
		if len(leases) > 0 {
			resp := s.propose(ctx, &ledger.ExpireLeasesCommand{Now: now.UnixNano(), Reason: "worker " + id + " down", Tasks: leases})
			s.metrics.countExpired(resp) // metrics
		}
	}
}

func (s *Server) expireLeases(ctx context.Context, now time.Time) {
	var refs []api.TaskRef
	s.store.FSM().View(func(l *ledger.Ledger) { refs = l.ExpiredLeases(now.UnixNano()) })
	if len(refs) > 0 {
		s.log.Info("leases expired", "count", len(refs))
		resp := s.propose(ctx, &ledger.ExpireLeasesCommand{Now: now.UnixNano(), Reason: "past deadline", Tasks: refs})
		s.metrics.countExpired(resp) // metrics
	}
}

// propose is Propose for the leader's own housekeeping: failures are logged
// and retried on the next tick. It returns the command's response (nil if it
// failed), which callers may ignore.
func (s *Server) propose(ctx context.Context, c ledger.Command) any {
	resp, err := s.store.Propose(ctx, c)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("leader command failed", "command", c.Type().String(), "err", err)
	}
	if err != nil {
		return nil
	}
	return resp
}

// newJobID stamps a job id on the leader.
func newJobID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "j-" + hex.EncodeToString(b[:])
}

// liveness is the leader's in-memory view of when each worker was last heard
// from. It is never replicated: only its transitions are.
type liveness struct {
	mu sync.Mutex
	// workers is each worker's record. A worker stream keeps its worker's
	// record (keptRecord) and writes it without a lookup: at 10,000
	// workers the map's assignment was 5% of a heartbeat.
	workers map[string]*liveRecord
	// forgets counts the records dropped (forget, resetAll): while it
	// stands still, a worker once known is known.
	forgets uint64
}

// liveRecord is what the leader remembers of a worker between heartbeats.
type liveRecord struct {
	seen time.Duration // when it was last heard from, since liveEpoch
	// running is how many tasks its last heartbeat said it was running
	// (the dashboard's utilisation); reported says a heartbeat said so.
	running  int
	reported bool
	// gone says the record was dropped (forget, resetAll): one kept by a
	// stream is no longer its worker's, which is looked up again.
	gone bool
}

// keptRecord is a worker stream's hold on the record of the worker its
// heartbeats last spoke for (the stream's reader's own).
type keptRecord struct {
	id  string
	rec *liveRecord
}

// liveEpoch is what liveRecord times count from: a duration from a
// time.Now keeps the monotonic clock's order, so a wall-clock jump marks no
// worker down.
var liveEpoch = time.Now()

func newLiveness() *liveness {
	return &liveness{workers: map[string]*liveRecord{}}
}

// heard records a worker as heard from now, under one lock: with a
// heartbeat also the tasks it says it runs. With keep (a stream's, or
// nil) it writes the kept record while it is still id's, and else looks
// id up and keeps what it finds: the same outcome, one lookup fewer.
func (lv *liveness) heard(keep *keptRecord, id string, now time.Time, running int, heartbeat bool) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	var r *liveRecord
	if keep != nil && keep.rec != nil && !keep.rec.gone && keep.id == id {
		r = keep.rec
	} else {
		r = lv.workers[id]
		if r == nil {
			r = &liveRecord{}
			lv.workers[id] = r
		}
		if keep != nil {
			*keep = keptRecord{id: id, rec: r}
		}
	}
	r.seen = now.Sub(liveEpoch)
	if heartbeat {
		r.running, r.reported = running, true
	}
}

// reported is what the worker's last heartbeat to this server said it ran.
func (lv *liveness) reported(id string) (int, bool) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	r := lv.workers[id]
	if r == nil {
		return 0, false
	}
	return r.running, r.reported
}

// touchUnknown starts the clock, at now, of each of ids this leader has not
// heard from, under one lock (the loop passes every live peer each tick).
func (lv *liveness) touchUnknown(ids []string, now time.Time) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	for _, id := range ids {
		if _, known := lv.workers[id]; !known {
			lv.workers[id] = &liveRecord{seen: now.Sub(liveEpoch)}
		}
	}
}

func (lv *liveness) lastSeen(id string) (time.Time, bool) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	r := lv.workers[id]
	if r == nil {
		return time.Time{}, false
	}
	return liveEpoch.Add(r.seen), true
}

// resetAll counts every one of ids as heard from now, and forgets the
// rest: a new leader has heard no heartbeat yet.
func (lv *liveness) resetAll(now time.Time, ids []string) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	for _, r := range lv.workers {
		r.gone = true
	}
	lv.workers = make(map[string]*liveRecord, len(ids))
	lv.forgets++
	for _, id := range ids {
		lv.workers[id] = &liveRecord{seen: now.Sub(liveEpoch)}
	}
}

func (lv *liveness) silentSince(cutoff time.Time) []string {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	var out []string
	before := cutoff.Sub(liveEpoch)
	for id, r := range lv.workers {
		if r.seen < before {
			out = append(out, id)
		}
	}
	return out
}

func (lv *liveness) forget(id string) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if r := lv.workers[id]; r != nil {
		r.gone = true
		delete(lv.workers, id)
	}
	lv.forgets++
}

// forgotten is how many times records were dropped (see forgets).
func (lv *liveness) forgotten() uint64 {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	return lv.forgets
}

// notifier wakes long polls when the ledger changes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}
