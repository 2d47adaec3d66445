package server

import (
	"context"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// A paused worker (its volunteer is at the keyboard, on battery, ...) keeps
// its leases: its executors are stopped, and pause time does not count
// against a task's timeout, so a lease granted before the pause could
// expire under a task with most of its time still ahead. While a worker's
// heartbeats say it is paused, the leader renews its held leases that are
// about to expire (a RenewLeasesCommand, committed only then: a lease is
// renewed about once per timeout + slack, not per heartbeat), for at most
// MaxPauseKeep from the first paused heartbeat it saw. Past that, or when
// the worker stops heartbeating, the leases expire as any others; a worker
// hands its tasks back itself after its own pause_keep (no longer than the
// PauseKeep the leader tells it). The pause clock lives in the leader's
// memory, like liveness: a new leader starts it again, which at worst keeps
// a paused worker's leases one MaxPauseKeep longer.

// pauses is when the leader first heard each paused worker say so.
type pauses struct {
	mu    sync.Mutex
	since map[string]time.Time
}

func newPauses() *pauses { return &pauses{since: map[string]time.Time{}} }

// note records a worker's pause state and returns how long it has been
// paused (0 if it is not).
func (p *pauses) note(worker string, paused bool, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !paused {
		delete(p.since, worker)
		return 0
	}
	since, ok := p.since[worker]
	if !ok {
		since = now
		p.since[worker] = since
	}
	return max(now.Sub(since), time.Nanosecond)
}

// renewAhead is how close to its expiry a paused worker's lease is renewed:
// two TTLs, so several heartbeats come in time even if one is lost.
func (s *Server) renewAhead() time.Duration { return 2 * s.cfg.WorkerTTL }

// keepPausedLeases renews a paused worker's held leases that expire within
// renewAhead, while its pause is within MaxPauseKeep.
func (s *Server) keepPausedLeases(ctx context.Context, req *api.HeartbeatRequest, now time.Time) {
	paused := s.pauses.note(req.Worker, req.Paused, now)
	if paused == 0 || paused > s.cfg.MaxPauseKeep {
		return
	}
	horizon := now.Add(s.renewAhead()).UnixNano()
	var due []api.TaskRef
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, ref := range req.Held {
			if !l.HoldsLease(req.Worker, ref) {
				continue
			}
			if expiry, _, ok := l.LeaseExpiry(ref); ok && expiry <= horizon {
				due = append(due, ref)
			}
		}
	})
	if len(due) == 0 {
		return
	}
	s.log.Info("renewing a paused worker's leases", "peer", req.Worker, "count", len(due), "paused", paused.Round(time.Second))
	s.propose(ctx, &ledger.RenewLeasesCommand{Worker: req.Worker, Now: now.UnixNano(), Slack: int64(s.cfg.LeaseSlack), Tasks: due})
}
