package ledger

import (
	"fmt"

	"maps"
	"reflect"

	"github.com/peergrid/peergrid/tasks"
)

// CheckIndexes rebuilds the derived indexes (shards by peer, blobs by peer,
// requests by id, references by blob and by owner, credentials by hash,
// the result cache) from the ledger's records and reports the first that
// differs from the one Apply kept. Tests call it after every step of a
// random walk; it costs a full scan, so nothing else should.
func (l *Ledger) CheckIndexes() error {
	placed, byPeer := shardIndex{}, newBlobIndex()
	for _, m := range l.manifests {
		placed.add(m, +1)
		byPeer.add(m)
	}
	if !maps.Equal(l.placed, placed) {
		return fmt.Errorf("shard index %v differs from the manifests' %v", l.placed, placed)
	}
	if !reflect.DeepEqual(l.byPeer, byPeer) {
		return fmt.Errorf("blob index %v differs from the manifests' %v", l.byPeer, byPeer)
	}
	requests := map[string]string{}
	for _, j := range l.order {
		if j.RequestID != "" {
			requests[j.RequestID] = j.ID
		}
	}
	if !maps.Equal(l.requests, requests) {
		return fmt.Errorf("request index %v differs from the jobs' %v", l.requests, requests)
	}
	if refs := l.scanRefs(); !maps.Equal(map[string]int(l.refs), refs) {
		return fmt.Errorf("reference counts %v differ from a scan of every job's %v", l.refs, refs)
	}
	if owned := l.scanOwnerRefs(); !reflect.DeepEqual(l.ownerRefs, owned) {
		return fmt.Errorf("owners' reference counts %v differ from a scan of every job's %v", l.ownerRefs, owned)
	}
	if cache := l.scanCache(); !reflect.DeepEqual(l.cache.sorted(), cache) {
		return fmt.Errorf("result cache index (%d keys) differs from a scan of the done tasks (%d keys)", l.cache.index.len(), len(cache))
	}
	byHash := map[string]string{}
	for id, cr := range l.creds {
		byHash[cr.Hash] = id
	}
	if !maps.Equal(l.credByHash, byHash) {
		return fmt.Errorf("credential hash index %v differs from the credentials' %v", l.credByHash, byHash)
	}
	joined := &Ledger{creds: l.creds, joinedBy: map[string]string{}}
	for _, cr := range l.creds {
		joined.noteJoin(cr)
	}
	if !maps.Equal(l.joinedBy, joined.joinedBy) {
		return fmt.Errorf("join credential index %v differs from the peer credentials' %v", l.joinedBy, joined.joinedBy)
	}
	return l.checkTasks()
}

// checkTasks checks each job's counters against its tasks' states, the
// lease index against the leased tasks and running replicas, and each
// replicated task's state and queue place against its replicas.
func (l *Ledger) checkTasks() error {
	leases := 0
	for _, j := range l.order {
		var n [4]int
		queued := map[int]int{}
		for _, idx := range j.requeued {
			queued[idx]++
		}
		for i := 0; i < j.Tasks.len(); i++ {
			t := j.Tasks.at(i)
			n[stateSlot(t.state())]++
			k, err := l.checkTask(j, i, t, queued[i])
			if err != nil {
				return err
			}
			leases += k
		}
		if got := [4]int{j.nQueued, j.nLeased, j.nDone, j.nFailed}; got != n {
			return fmt.Errorf("job %s counts queued, leased, done, failed %v; its tasks %v", j.ID, got, n)
		}
	}
	if leases != l.nLeases {
		return fmt.Errorf("%d leases counted, %d held", l.nLeases, leases)
	}
	return l.checkLeaseIndex()
}

// checkLeaseIndex checks the live leases, the expiries they report and
// their index by worker against a walk of every task and replica.
func (l *Ledger) checkLeaseIndex() error {
	scanned := l.scanLeases()
	want := map[string]map[taskKey]struct{}{}
	for k, e := range scanned {
		if want[e.worker] == nil {
			want[e.worker] = map[taskKey]struct{}{}
		}
		want[e.worker][k] = struct{}{}
		if got := k.expiryOf(); got != e.expiry {
			return fmt.Errorf("lease %+v expires at %d, its task or replica at %d", k.ref(), got, e.expiry)
		}
	}
	if l.nLeases != len(scanned) {
		return fmt.Errorf("%d leases counted, a walk of the tasks finds %d", l.nLeases, len(scanned))
	}
	if len(l.byWorker) != len(want) {
		return fmt.Errorf("lease index has %d workers, the tasks' leases %d", len(l.byWorker), len(want))
	}
	for w, keys := range want {
		if h := l.byWorker[w]; h == nil || !maps.Equal(h.keys, keys) {
			return fmt.Errorf("lease index of worker %s differs from a walk of the tasks (%d leases)", w, len(keys))
		}
	}
	return nil
}

// indexed reports whether lease k is in worker's lease set.
func (l *Ledger) indexed(k taskKey, worker string) bool {
	h := l.byWorker[worker]
	if h == nil {
		return false
	}
	_, ok := h.keys[k]
	return ok
}

// walkedLease is a live lease a walk of the tasks finds.
type walkedLease struct {
	expiry int64
	worker string
}

// scanLeases walks every task and replica for the live leases, with their
// expiry and holder: what the lease index must hold. It costs a pass over
// every task: CheckIndexes and tests only.
func (l *Ledger) scanLeases() map[taskKey]walkedLease {
	out := map[taskKey]walkedLease{}
	for _, j := range l.order {
		for i := 0; i < j.Tasks.len(); i++ {
			t := j.Tasks.at(i)
			switch {
			case t.Rep != nil:
				for _, r := range t.Rep.Reps {
					if r.Verdict == vRunning {
						out[leaseKey(j, i, r.Attempt)] = walkedLease{expiry: r.Expiry, worker: r.Worker}
					}
				}
			case t.state() == tasks.TaskLeased:
				out[leaseKey(j, i, t.attemptCount())] = walkedLease{expiry: t.Expiry, worker: t.Worker}
			}
		}
	}
	return out
}

// checkTask checks one task and says how many leases it holds.
func (l *Ledger) checkTask(j *job, idx int, t *task, inQueue int) (int, error) {
	if t.Rep == nil {
		if t.state() != tasks.TaskLeased {
			return 0, nil
		}
		if !l.indexed(leaseKey(j, idx, t.attemptCount()), t.Worker) {
			return 0, fmt.Errorf("job %s task %d leased (attempt %d) but not in the lease index", j.ID, idx, t.attemptCount())
		}
		return 1, nil
	}
	votes, running, best, _ := t.Rep.tally()
	for _, r := range t.Rep.Reps {
		if ok := l.indexed(leaseKey(j, idx, r.Attempt), r.Worker); ok != (r.Verdict == vRunning) {
			return 0, fmt.Errorf("job %s task %d replica %d (%s): indexed lease %v", j.ID, idx, r.Attempt, r.Verdict, ok)
		}
	}
	terminal := t.state() == tasks.TaskDone || t.state() == tasks.TaskFailed
	wantQueue := !terminal && !j.Cancelled && t.Rep.open(votes, running, best) > 0
	switch {
	case terminal && running > 0:
		return 0, fmt.Errorf("job %s task %d is %s with %d replicas running", j.ID, idx, t.state(), running)
	case !terminal && (running > 0) != (t.state() == tasks.TaskLeased):
		return 0, fmt.Errorf("job %s task %d is %s with %d replicas running", j.ID, idx, t.state(), running)
	case !j.Cancelled && (inQueue == 1) != t.Rep.Queued || inQueue > 1:
		return 0, fmt.Errorf("job %s task %d is %d times in the queue, flagged %v", j.ID, idx, inQueue, t.Rep.Queued)
	case !j.Cancelled && t.Rep.Queued != wantQueue:
		return 0, fmt.Errorf("job %s task %d queued %v, wants another replica %v", j.ID, idx, t.Rep.Queued, wantQueue)
	}
	return running, nil
}

// scanOwnerRefs counts each owner's references by walking its jobs.
func (l *Ledger) scanOwnerRefs() map[string]blobRefs {
	out := map[string]blobRefs{}
	for _, j := range l.order {
		if j.Owner == "" {
			continue
		}
		r := out[j.Owner]
		if r == nil {
			r = blobRefs{}
		}
		r.add(j.Spec.ModuleHash, 1)
		for _, in := range j.Spec.Inputs {
			r.add(in.Hash, 1)
		}
		for i := 0; i < j.Tasks.len(); i++ {
			t := j.Tasks.at(i)
			r.add(t.stdoutRef(), 1)
			for _, k := range t.keptRefs() {
				r.add(k, 1)
			}
		}
		if len(r) > 0 {
			out[j.Owner] = r
		}
	}
	return out
}

// scanRefs counts the references to each blob by walking every task of
// every job: the oracle for blobRefs.
func (l *Ledger) scanRefs() map[string]int {
	refs := map[string]int{}
	count := func(h string) {
		if h != "" {
			refs[h]++
		}
	}
	for _, j := range l.order {
		count(j.Spec.ModuleHash)
		for _, in := range j.Spec.Inputs {
			count(in.Hash)
		}
		for i := 0; i < j.Tasks.len(); i++ {
			t := j.Tasks.at(i)
			count(t.stdoutRef())
			for _, k := range t.keptRefs() {
				count(k)
			}
		}
	}
	return refs
}
