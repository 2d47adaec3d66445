package server

import (
	"context"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// releaseForgotten hands back the leases the ledger gives a worker that
// its heartbeat (arriving at now) does not hold: a grant whose reply was
// lost (the leader died, the request was cancelled). Only leases granted a
// TTL before the heartbeat count, so a grant whose reply is still on its
// way is left alone.
//
// It runs in each heartbeat, for that worker alone: the ledger indexes
// leases by worker (Ledger.EachLeaseOf), so the check costs the worker's
// own few leases, and a lost grant goes back at the first heartbeat a TTL
// after it, not a tick later. (Before the index, a heartbeat walking every
// lease of the grid took 92% of a leader of 10,000 workers; the pass on
// the leader's tick that replaced it still walked all 80,000 leases every
// 3 s under the ledger's read lock: BENCHMARKS.md, issue 15.)
func (s *Server) releaseForgotten(ctx context.Context, worker string, held []api.TaskRef, now time.Time) {
	forgotten := s.forgottenLeases(worker, held, now)
	if len(forgotten) == 0 {
		return
	}
	s.log.Info("releasing leases the worker does not hold", "peer", worker, "count", len(forgotten))
	s.propose(ctx, &ledger.ReleaseTasksCommand{Worker: worker, Now: now.UnixNano(), Tasks: forgotten})
}

// forgottenLeases lists, sorted, worker's leases granted before now less
// a TTL that held does not name. Only a lease held does not name is
// looked up for its grant time: the common heartbeat, holding all its
// leases, touches nothing of the ledger beyond the worker's own index.
func (s *Server) forgottenLeases(worker string, held []api.TaskRef, now time.Time) []api.TaskRef {
	cutoff := now.Add(-s.cfg.WorkerTTL).UnixNano()
	holds := heldSet(held)
	var out []api.TaskRef
	s.store.FSM().View(func(l *ledger.Ledger) {
		l.EachLeaseOf(worker, func(ref api.TaskRef) {
			if holds(ref) {
				return
			}
			expiry, timeout, ok := l.LeaseExpiry(ref)
			if granted := expiry - int64(timeout) - int64(s.cfg.LeaseSlack); ok && granted < cutoff {
				out = append(out, ref)
			}
		})
	})
	slices.SortFunc(out, api.CompareTaskRefs)
	return out
}

// heldSet answers whether held names a lease: by a scan of a short list
// (a worker holds its cores' tasks and a prefetch), by a set for a long
// one, so a worker holding thousands costs no quadratic time.
func heldSet(held []api.TaskRef) func(api.TaskRef) bool {
	if len(held) <= 32 {
		return func(ref api.TaskRef) bool { return slices.Contains(held, ref) }
	}
	set := make(map[api.TaskRef]struct{}, len(held))
	for _, ref := range held {
		set[ref] = struct{}{}
	}
	return func(ref api.TaskRef) bool { _, ok := set[ref]; return ok }
}
