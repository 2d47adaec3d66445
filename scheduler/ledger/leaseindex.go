package ledger

import "github.com/peergrid/peergrid/api"

// The lease index: the live leases (Ledger.leased, by task attempt) are
// indexed by the worker holding them (Ledger.byWorker), so finding one
// worker's leases costs that worker's leases, not the grid's. A
// heartbeat's forgotten-lease check, a worker marked down or revoked,
// distrust and the peers listing all ask per worker; a pass over every
// lease for one worker took 92% of a leader of 10,000 workers holding
// 80,000 leases (BENCHMARKS.md, issue 15).
//
// Both are derived: Apply changes them through holdLease, renewLease and
// dropLease only, and a restore rebuilds them from the tasks and replicas
// (snapshot.go); they are never serialized. Only live leases are indexed,
// so a finished task costs the index nothing. The caller names the holder
// on a drop (it has the task or replica at hand): a second lookup in the
// grid-wide map for it was a visible share of Apply.

// heldLeases is one worker's live leases, with the high-water mark its
// set is compacted from (see compact.go).
type heldLeases struct {
	keys map[taskKey]struct{}
	mark int
}

// holdLease records lease k, held by worker until expiry.
func (l *Ledger) holdLease(k taskKey, worker string, expiry int64) {
	l.leased[k] = expiry
	h := l.byWorker[worker]
	if h == nil {
		h = &heldLeases{keys: map[taskKey]struct{}{}}
		l.byWorker[worker] = h
	}
	h.keys[k] = struct{}{}
	h.keys = compacted(h.keys, &h.mark) // raises the mark
}

// renewLease moves live lease k's expiry (the caller checked it is
// live); its holder stays.
func (l *Ledger) renewLease(k taskKey, expiry int64) {
	l.leased[k] = expiry
}

// dropLease ends lease k, held by worker. A worker left with no lease
// leaves the index, so the index holds only workers with live leases.
func (l *Ledger) dropLease(k taskKey, worker string) {
	delete(l.leased, k)
	h := l.byWorker[worker]
	if h == nil {
		return
	}
	delete(h.keys, k)
	if len(h.keys) == 0 {
		delete(l.byWorker, worker)
		return
	}
	h.keys = compacted(h.keys, &h.mark)
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
