package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
)

// A worker holds at most Cores+maxPrefetch leases; with an adaptive
// prefetch (Config.Prefetch 0) it holds enough to cover prefetchHorizon of
// work at the average task duration. It leases in batches (see leasePlan):
// half its target at once when the half still held is minLeaseLead of
// work or more, else a quarter.
const (
	maxPrefetch     = 512
	prefetchHorizon = 250 * time.Millisecond
	minLeaseLead    = 100 * time.Millisecond
)

// leaseLoop keeps the queue full: it leases as many tasks as there are free
// slots, long-polling when the grid has nothing queued. A lease call carries
// the batch of finished reports the report loop offers while it waits for
// slots (see carryReports): one call then reports and leases, where it
// took two. A call that fails hands its reports back to the report loop,
// which sends them alone (a report the grid already took is accepted
// again, changing nothing).
func (r *run) leaseLoop(ctx context.Context) {
	backoff := newBackoff()
	for ctx.Err() == nil {
		// No leases while the volunteer's preferences stop the worker; a
		// pause cuts short a long poll in progress.
		callCtx, cancel, ok := r.gate.waitOpen(ctx)
		if !ok {
			return
		}
		free, carried := r.slots.acquireOrCarry(callCtx, r.plan, r.w.cfg.Cores, r.carrying())
		if free == 0 {
			cancel()
			r.bounce(carried) // no lease due: they go alone
			continue
		}
		resp, err := r.w.client.LeaseWithReports(callCtx, r.leaseRequest(free, carried))
		cut := callCtx.Err() != nil // stopped or paused: not a failure
		cancel()
		var got []api.Assignment
		if err == nil {
			got = resp.Tasks
		}
		r.releaseSlots(free - len(got))
		if err != nil {
			r.bounce(carried)
			if errors.Is(err, client.ErrReportsNotCarried) {
				r.stopCarrying()
				continue
			}
			if !cut {
				r.w.log.Warn("lease failed", "err", err)
				backoff.wait(ctx)
			}
			continue
		}
		r.settle(carried)
		backoff.reset()
		for _, a := range got {
			r.hold(refOf(a), true)
			r.queue <- a // never blocks: a slot was taken for it
		}
	}
}

// carryRecheck is how long a worker whose server refused reports on a
// lease (an older server) sends them alone before it tries again (the
// grid may have been upgraded since).
const carryRecheck = 10 * time.Minute

// carrying is the channel the report loop offers batches on, or nil (so
// none is taken) while the grid is known not to take reports on a lease.
func (r *run) carrying() chan []api.Report {
	if time.Now().UnixNano() < r.carryOffUntil.Load() {
		return nil
	}
	return r.carry
}

func (r *run) stopCarrying() {
	r.w.log.Info("the server does not take reports on a lease (an older version): sending them alone", "recheck", carryRecheck)
	r.carryOffUntil.Store(time.Now().Add(carryRecheck).UnixNano())
}

// leaseRequest asks for up to n tasks, saying what this worker can run,
// with reports finished since the last call. A call carrying reports does
// not long-poll: their answer comes back at once, and a pause or drain
// cutting a poll short cannot leave their fate unknown (and send them
// again); with nothing queued the next call polls.
func (r *run) leaseRequest(n int, reports []api.Report) *api.LeaseRequest {
	w := r.w
	wait := w.cfg.LeaseWait
	if len(reports) > 0 {
		wait = 0
	}
	return &api.LeaseRequest{
		Worker: w.cfg.ID, Address: w.address(), Cores: w.cfg.Cores, Max: n, Wait: wait, Engines: w.engines,
		Storage: w.shards != nil, Reports: reports,
	}
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

// leasePlan is how many tasks a worker holds (target) and how many free
// slots make a lease due (batch).
type leasePlan struct{ target, batch int }

func (r *run) plan() leasePlan {
	t := r.target()
	return leasePlan{target: t, batch: leaseBatch(t, time.Duration(r.avgNs.Load()), r.w.cfg.Cores)}
}

// leaseBatch is how many of target's slots must be free before a lease is
// due. Each lease is a Raft entry (with the reports it carries), whose
// cost to the grid's process (an fsync, the HTTP call, dozens of the Go
// runtime's wake-ups) is taken from the executors when tasks are CPU
// bound: so tasks of a few milliseconds are leased half a target at a time
// (half the entries of a quarter), as long as the half still held keeps
// the cores busy for minLeaseLead while the call is made; tiny tasks,
// whose target is capped at maxPrefetch and which would run dry, are
// leased a quarter at a time.
func leaseBatch(target int, avg time.Duration, cores int) int {
	half := target / 2
	if avg > 0 && time.Duration(target-half)*avg/time.Duration(max(cores, 1)) >= minLeaseLead {
		return half
	}
	return target / 4
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

// slots counts tasks held; acquire waits while the count is at the target.
type slots struct {
	mu    sync.Mutex
	held  int
	freed chan struct{} // closed and replaced on every release
}

func newSlots() *slots { return &slots{freed: make(chan struct{})} }

// acquire blocks until a lease is due (see leaseDue), then takes every
// slot up to the plan's target.
func (s *slots) acquire(ctx context.Context, plan func() leasePlan, cores int) int {
	n, _ := s.acquireOrCarry(ctx, plan, cores, nil)
	return n
}

// acquireOrCarry is acquire that also takes a batch of finished reports
// offered on carry while it waits. Their slots are free once the call that
// carries them applies them; if that makes a lease due (by acquire's rule)
// it takes every slot up to the target, reports included, for the call to
// carry them. If not, it frees their slots and returns none with the
// batch, which then goes alone: a worker with a deep prefetch leases in
// large batches, not one small lease per report batch.
func (s *slots) acquireOrCarry(ctx context.Context, plan func() leasePlan, cores int, carry <-chan []api.Report) (int, []api.Report) {
	for {
		s.mu.Lock()
		p := plan()
		n, freed := p.target-s.held, s.freed
		ok := leaseDue(n, p, s.held, cores)
		if ok {
			s.held += n
		}
		s.mu.Unlock()
		if ok {
			return n, nil
		}
		select {
		case <-freed:
		case batch := <-carry:
			return s.swap(len(batch), plan(), cores), batch
		case <-ctx.Done():
			return 0, nil
		}
	}
}

// leaseDue is when to lease n free slots of plan p with held taken: in
// batches, once p.batch slots are free, unless the worker is about to run
// dry.
func leaseDue(n int, p leasePlan, held, cores int) bool {
	return n > 0 && (n >= p.batch || held <= 2*cores)
}

// swap frees k slots (reports on their way) and, if a lease is then due,
// takes every slot up to the plan's target, returning how many it took.
func (s *slots) swap(k int, p leasePlan, cores int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held -= k
	n := p.target - s.held
	if !leaseDue(n, p, s.held, cores) {
		n = 0
	}
	s.held += n
	if n < k { // some freed slots are left over: wake anyone waiting for them
		close(s.freed)
		s.freed = make(chan struct{})
	}
	return n
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
