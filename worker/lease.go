package worker

import (
	"context"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
)

// A worker holds at most Cores+maxPrefetch leases; with an adaptive
// prefetch (Config.Prefetch 0) it holds enough to cover prefetchHorizon of
// work at the average task duration.
const (
	maxPrefetch     = 512
	prefetchHorizon = 250 * time.Millisecond
)

// leaseLoop keeps the queue full: it leases as many tasks as there are free
// slots, long-polling when the grid has nothing queued.
func (r *run) leaseLoop(ctx context.Context) {
	backoff := newBackoff()
	for ctx.Err() == nil {
		// No leases while the volunteer's preferences stop the worker; a
		// pause cuts short a long poll in progress.
		callCtx, cancel, ok := r.gate.waitOpen(ctx)
		if !ok {
			return
		}
		free := r.acquireSlots(callCtx)
		if free == 0 {
			cancel()
			continue
		}
		got, err := r.w.client.Lease(callCtx, r.leaseRequest(free))
		cut := callCtx.Err() != nil // stopped or paused: not a failure
		cancel()
		r.releaseSlots(free - len(got))
		if err != nil {
			if !cut {
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

// leaseRequest asks for up to n tasks, saying what this worker can run.
func (r *run) leaseRequest(n int) *api.LeaseRequest {
	w := r.w
	return &api.LeaseRequest{
		Worker: w.cfg.ID, Address: w.address(), Cores: w.cfg.Cores, Max: n, Wait: w.cfg.LeaseWait, Engines: w.engines,
		Storage: w.shards != nil,
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
