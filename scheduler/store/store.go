package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// ErrNotLeader is returned for a write sent to a server that is not the leader.
var ErrNotLeader = errors.New("not the cluster leader")

// ErrNoLeader is returned when the group has no leader to take a write.
var ErrNoLeader = errors.New("no cluster leader")

// ErrNotProposed marks a leader error raised before anything was proposed:
// the client may safely retry elsewhere.
var ErrNotProposed = errors.New("nothing was applied; safe to retry")

// Config configures a ledger store.
type Config struct {
	ID       string // Raft server id
	DataDir  string // raft.db (log + stable store) and snapshots/ live here
	RaftBind string // host:port for Raft traffic
	// Bootstrap makes this server a one-voter group if it has no Raft state yet.
	Bootstrap bool
	// Fast uses short Raft timeouts, for tests and dev on loopback.
	Fast bool
	// SnapshotThreshold overrides raft's default (8192 entries) when set.
	SnapshotThreshold uint64
	// StreamLayer replaces the TCP transport's listener and dialer (tests cut
	// links through it); nil uses plain TCP on RaftBind.
	StreamLayer raft.StreamLayer
	// TLS, when set, wraps every Raft connection in mutually authenticated
	// TLS (see RaftTLS).
	TLS *RaftTLS
	// OnApply, when set, is called after every Apply and Restore of the
	// ledger (ledger.FSM.OnApply). It is set before Raft starts: a
	// restarted server replays its log as soon as Raft runs, so a hook
	// set after Open raced with that replay.
	OnApply func()
	Logger  *slog.Logger
}

// Store owns Raft and the FSM: it is the only way into the ledger. HTTP
// handlers translate requests and call Propose and View; they never touch Raft.
type Store struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *ledger.FSM
	transport *raft.NetworkTransport
	boltStore *raftboltdb.BoltStore
	proposer  *proposer
	log       *slog.Logger
	// compact makes Propose write leases and completions in their compact
	// shape (ledger.EncodeCompact). Off until the leader's command gate
	// (scheduler/server) knows every server applies those types.
	compact atomic.Bool

	observer  *raft.Observer
	observed  chan raft.Observation
	leaderMu  sync.Mutex
	leaderGen chan struct{} // closed and replaced when the leader changes
	watchDone chan struct{}
}

// Open opens (or creates) the ledger under cfg.DataDir and starts Raft.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &Store{cfg: cfg, fsm: ledger.NewFSM(), log: cfg.Logger}
	if cfg.OnApply != nil {
		s.fsm.OnApply(cfg.OnApply)
	}
	if err := s.open(); err != nil {
		s.closeResources()
		return nil, err
	}
	s.proposer = newProposer(s.raft)
	s.watchLeader()
	return s, nil
}

// watchLeader follows Raft's leader observations, so callers can wait for
// the leader to change (see LeaderChanged).
func (s *Store) watchLeader() {
	s.leaderGen, s.watchDone = make(chan struct{}), make(chan struct{})
	s.observed = make(chan raft.Observation, 16)
	s.observer = raft.NewObserver(s.observed, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(s.observer)
	go func() {
		defer close(s.watchDone)
		for range s.observed {
			s.leaderMu.Lock()
			close(s.leaderGen)
			s.leaderGen = make(chan struct{})
			s.leaderMu.Unlock()
		}
	}()
}

// LeaderChanged is closed the next time this server sees the leader change
// (a new leader, or none). Take it before reading Leader, so no change is
// missed.
func (s *Store) LeaderChanged() <-chan struct{} {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderGen
}

func (s *Store) open() error {
	hlog := newHCLogger(s.log)
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(s.cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	s.boltStore = bolt
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.cfg.DataDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("open snapshots: %w", err)
	}
	if s.transport, err = s.newTransport(hlog); err != nil {
		return err
	}
	rc := s.raftConfig(hlog)
	s.raft, err = raft.NewRaft(rc, raftFSM{s.fsm}, bolt, bolt, snaps, s.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	return s.maybeBootstrap(bolt, snaps)
}

func (s *Store) newTransport(hlog hclog.Logger) (*raft.NetworkTransport, error) {
	layer := s.cfg.StreamLayer
	if layer == nil && s.cfg.TLS != nil {
		tcp, err := newTCPStreamLayer(s.cfg.RaftBind)
		if err != nil {
			return nil, fmt.Errorf("raft transport on %s: %w", s.cfg.RaftBind, err)
		}
		layer = tcp
	}
	if layer != nil && s.cfg.TLS != nil {
		layer = &tlsStreamLayer{StreamLayer: layer, tls: s.cfg.TLS}
	}
	if layer != nil {
		return raft.NewNetworkTransportWithLogger(layer, 3, 10*time.Second, hlog), nil
	}
	addr, err := net.ResolveTCPAddr("tcp", s.cfg.RaftBind)
	if err != nil {
		return nil, fmt.Errorf("raft bind %q: %w", s.cfg.RaftBind, err)
	}
	t, err := raft.NewTCPTransportWithLogger(s.cfg.RaftBind, addr, 3, 10*time.Second, hlog)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", s.cfg.RaftBind, err)
	}
	return t, nil
}

func (s *Store) raftConfig(hlog hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.ID)
	rc.Logger = hlog
	if s.cfg.Fast {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	if s.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = s.cfg.SnapshotThreshold
		rc.TrailingLogs = s.cfg.SnapshotThreshold
	}
	return rc
}

func (s *Store) maybeBootstrap(logs raft.LogStore, snaps raft.SnapshotStore) error {
	if !s.cfg.Bootstrap {
		return nil
	}
	has, err := raft.HasExistingState(logs, s.boltStore, snaps)
	if err != nil || has {
		return err
	}
	cfg := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.cfg.ID), Address: s.transport.LocalAddr(), Suffrage: raft.Voter,
	}}}
	return s.raft.BootstrapCluster(cfg).Error()
}

// FSM gives read access to the ledger (FSM.View).
func (s *Store) FSM() *ledger.FSM { return s.fsm }

// ID is this server's Raft server id.
func (s *Store) ID() string { return s.cfg.ID }

// RaftAddr is the address other servers reach this one's Raft on.
func (s *Store) RaftAddr() string { return string(s.transport.LocalAddr()) }

// IsLeader reports whether this server leads the group now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderCh delivers true when this server gains leadership, false when it loses it.
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// Leader is the Raft address and id of the current leader ("" if none).
func (s *Store) Leader() (string, string) {
	addr, id := s.raft.LeaderWithID()
	return string(addr), string(id)
}

// Raft exposes the raft instance for status and operator commands.
func (s *Store) Raft() *raft.Raft { return s.raft }

// WaitLeader polls until this store sees a leader or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.Leader(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
	}
}

// Propose commits one command on the leader and returns its response: the
// value the command's applyX returned. A command that broke a ledger rule
// changed nothing, and its rule error is returned as the error. It is the
// one way anything changes the ledger; concurrent proposals share Raft
// entries (see proposer).
func (s *Store) Propose(ctx context.Context, c ledger.Command) (any, error) {
	encode := ledger.Encode
	if s.compact.Load() {
		encode = ledger.EncodeCompact
	}
	data, err := encode(c)
	if err != nil {
		return nil, err
	}
	if !s.IsLeader() {
		return nil, fmt.Errorf("%w: %w", ErrNotLeader, ErrNotProposed)
	}
	resp, err := s.proposer.propose(ctx, data)
	if err != nil {
		return nil, err
	}
	if e, ok := resp.(error); ok {
		return nil, e
	}
	return resp, nil
}

// ProposeInOrder commits commands that must apply in the order given, as
// Propose commits one, without waiting for one's commit before proposing
// the next: they share a Raft entry when the proposer gathers them
// together, else take entries that follow each other. It returns each
// command's response and error, as Propose would (a command that broke a
// ledger rule has its rule error; a later one is still applied). A command
// that could not be proposed leaves every later one unproposed, with the
// same error.
func (s *Store) ProposeInOrder(ctx context.Context, cmds ...ledger.Command) ([]any, []error) {
	resps, errs := make([]any, len(cmds)), make([]error, len(cmds))
	datas := make([][]byte, len(cmds))
	for i, c := range cmds {
		var err error
		if datas[i], err = s.encoder()(c); err != nil {
			return resps, failFrom(errs, 0, fmt.Errorf("%w: command %d: %w", ErrNotProposed, i, err))
		}
	}
	if !s.IsLeader() {
		return resps, failFrom(errs, 0, fmt.Errorf("%w: %w", ErrNotLeader, ErrNotProposed))
	}
	for i, r := range s.proposer.proposeInOrder(ctx, datas) {
		resps[i], errs[i] = r.resp, r.err
		if e, ok := r.resp.(error); ok && r.err == nil {
			resps[i], errs[i] = nil, e
		}
	}
	return resps, errs
}

// failFrom sets errs[i:] to err.
func failFrom(errs []error, i int, err error) []error {
	for ; i < len(errs); i++ {
		errs[i] = err
	}
	return errs
}

// encoder is how commands are encoded now (see SetCompactCommands).
func (s *Store) encoder() func(ledger.Command) ([]byte, error) {
	if s.compact.Load() {
		return ledger.EncodeCompact
	}
	return ledger.Encode
}

// SetCompactCommands turns on or off proposing leases and completions in
// their compact shape. Only turn it on when every server in the group applies
// ledger.CompactCommandTypes: a server that does not stops at them.
func (s *Store) SetCompactCommands(on bool) { s.compact.Store(on) }

// CompactCommands reports whether Propose writes the compact shapes.
func (s *Store) CompactCommands() bool { return s.compact.Load() }

// Barrier waits until every committed entry is applied here (bounded by
// ctx's deadline, else 10 s).
func (s *Store) Barrier(ctx context.Context) error {
	d := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return MapRaftErr(s.raft.Barrier(d).Error())
}

// Snapshot forces a snapshot now (operators and tests).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// Close stops Raft and closes the log. It does not leave the group.
func (s *Store) Close() error {
	if s.proposer != nil {
		s.proposer.close()
	}
	var err error
	if s.raft != nil {
		if s.observer != nil {
			s.raft.DeregisterObserver(s.observer)
			close(s.observed)
			<-s.watchDone
		}
		err = s.raft.Shutdown().Error()
	}
	return errors.Join(err, s.closeResources())
}

func (s *Store) closeResources() error {
	var errs []error
	if s.transport != nil {
		errs = append(errs, s.transport.Close())
	}
	if s.boltStore != nil {
		errs = append(errs, s.boltStore.Close())
	}
	return errors.Join(errs...)
}

// MapRaftErr maps a Raft error to ErrNotLeader (with ErrNotProposed when
// nothing can have been applied) or ErrNoLeader; others pass through.
func MapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %w: %v", ErrNotLeader, ErrNotProposed, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// The entry may yet commit under the next leader: not safe to retry blindly.
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// newHCLogger routes Raft's hclog output into slog, warnings and up.
func newHCLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "raft", Level: hclog.Warn, Output: slogWriter{log}, DisableTime: true,
	})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(bytes.TrimSpace(p)), "component", "raft")
	return len(p), nil
}

// StateName is a Raft state as the API and metrics spell it: leader,
// candidate, follower or shutdown.
func StateName(st raft.RaftState) string {
	switch st {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Follower:
		return "follower"
	}
	return "shutdown"
}
