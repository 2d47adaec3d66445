package ledger

import "github.com/peergrid/peergrid/api"

// The lease index: the live leases (by task attempt) are indexed by the
// worker holding them (Ledger.byWorker), so finding one worker's leases
// costs that worker's leases, not the grid's. A
// heartbeat's forgotten-lease check, a worker marked down or revoked,
// distrust and the peers listing all ask per worker; a pass over every
// lease for one worker took 92% of a leader of 10,000 workers holding
// 80,000 leases (BENCHMARKS.md, issue 15).
//
// It is derived: Apply changes it through holdLease and dropLease only,
// and a restore rebuilds it from the tasks and replicas (snapshot.go); it
// is never serialized. Only live leases are indexed, so a finished task
// costs the index nothing. The caller names the holder on a drop (it has
// the task or replica at hand): a second lookup in a grid-wide map for it
// was a visible share of Apply.
//
// A lease's expiry is its task's (task.Expiry) or its replica's: a
// grid-wide map from lease to expiry beside the index cost every grant
// and every completion an access to a map of every live lease, cold in
// the cache at 80,000 leases (10% of a leader at 10,000 workers,
// BENCHMARKS.md issue 15), for the expiry pass alone, which runs a few
// times a TTL and now walks the index instead.

// heldLeases is one worker's live leases, with the high-water mark its
// set is compacted from (see compact.go).
type heldLeases struct {
	keys map[taskKey]struct{}
	mark int
}

// spareSetMax is the largest lease set kept for the next worker once its
// own emptied: a worker's completions and its next lease come in one
// command, so its set empties and is wanted again at once.
const spareSetMax = 64

// holdLease records lease k, held by worker (its expiry is the task's or
// the replica's, set by the caller).
func (l *Ledger) holdLease(k taskKey, worker string) {
	h := l.byWorker[worker]
	if h == nil {
		h, l.spareSet = l.spareSet, nil
		if h == nil {
			h = &heldLeases{keys: map[taskKey]struct{}{}}
		}
		l.byWorker[worker] = h
	}
	n := len(h.keys)
	h.keys[k] = struct{}{}
	l.nLeases += len(h.keys) - n
	h.keys = compacted(h.keys, &h.mark) // raises the mark
}

// dropLease ends lease k, held by worker. A worker left with no lease
// leaves the index, so the index holds only workers with live leases.
func (l *Ledger) dropLease(k taskKey, worker string) {
	h := l.byWorker[worker]
	if h == nil {
		return
	}
	n := len(h.keys)
	delete(h.keys, k)
	l.nLeases -= n - len(h.keys)
	if len(h.keys) == 0 {
		delete(l.byWorker, worker)
		if h.mark <= spareSetMax {
			h.mark, l.spareSet = 0, h
		}
		return
	}
	h.keys = compacted(h.keys, &h.mark)
}

// expiryOf is live lease k's expiry: its replica's, or its task's.
func (k taskKey) expiryOf() int64 {
	t := k.job.Tasks.at(int(k.index))
	if t.Rep != nil {
		if r := t.Rep.running(int(k.attempt)); r != nil {
			return r.Expiry
		}
	}
	return t.Expiry
}

// LeasesOf lists the current leases held by worker, sorted. It costs
// O(k log k) for the worker's k leases.
func (l *Ledger) LeasesOf(worker string) []api.TaskRef {
	h := l.byWorker[worker]
	if h == nil {
		return nil
	}
	out := make([]api.TaskRef, 0, len(h.keys))
	for k := range h.keys {
		out = append(out, k.ref())
	}
	sortRefs(out)
	return out
}

// EachLeaseOf calls fn for every lease worker holds, in no set order. It
// allocates nothing and costs O(the worker's leases): LeaseExpiry tells a
// lease's expiry where one is wanted.
func (l *Ledger) EachLeaseOf(worker string, fn func(ref api.TaskRef)) {
	if h := l.byWorker[worker]; h != nil {
		for k := range h.keys {
			fn(k.ref())
		}
	}
}

// RunningByWorker counts the leases each worker holds, in O(workers
// holding leases).
func (l *Ledger) RunningByWorker() map[string]int {
	running := make(map[string]int, len(l.byWorker))
	for w, h := range l.byWorker {
		running[w] = len(h.keys)
	}
	return running
}

func (k taskKey) ref() api.TaskRef {
	return api.TaskRef{Job: k.job.ID, Index: int(k.index), Attempt: int(k.attempt)}
}
