package worker

import (
	"context"

	"github.com/peergrid/peergrid/api"
)

// A run keeps two records, which its heartbeats send: every lease it holds
// (running or queued, until reported or handed back), so the leader can
// hand back at once a lease whose grant reply was lost; and the attempts it
// is running, each with the cancel that stops it when the leader says its
// lease is gone.

func refOf(a api.Assignment) api.TaskRef {
	return api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
}

// track records an attempt as running and returns its context, which
// untrack, stopStale or the end of a drain cancels.
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

// handBackRunning stops every running attempt to hand it back (a pause
// past pause_keep, a drain while paused): its runner releases it.
func (r *run) handBackRunning() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ref, cancel := range r.running {
		r.handingBack[ref] = true
		cancel()
	}
}

// takeHandingBack reports (once) whether an attempt was stopped to be
// handed back.
func (r *run) takeHandingBack(ref api.TaskRef) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.handingBack[ref] {
		return false
	}
	delete(r.handingBack, ref)
	return true
}

// counts are the attempts running and the leases held.
func (r *run) counts() (running, held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running), len(r.held)
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
