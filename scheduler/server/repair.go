package server

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

// repairPlanner is the leader's in-memory view of repair work: shards
// readers reported missing or corrupt, and orders handed to storage peers.
// Only outcomes are replicated (the new manifest a repairer commits), as
// with liveness: a new leader simply plans again.
type repairPlanner struct {
	// grace is how long a storage peer may be down before its shards count
	// as lost; timeout how long an order may take before it is given to
	// another peer.
	grace, timeout time.Duration

	mu      sync.Mutex
	faults  map[string]map[storage.ShardLoc]bool // blob -> reported shards
	pending map[string]*repairOrder              // blob -> order in flight
}

type repairOrder struct {
	order     api.RepairOrder
	worker    string
	delivered bool
	deadline  time.Time
}

func newRepairPlanner(grace, timeout time.Duration) *repairPlanner {
	return &repairPlanner{grace: grace, timeout: timeout, faults: map[string]map[storage.ShardLoc]bool{}, pending: map[string]*repairOrder{}}
}

// report records shards a reader could not use.
func (rp *repairPlanner) report(blob string, lost []storage.ShardLoc) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.faults[blob] == nil {
		rp.faults[blob] = map[storage.ShardLoc]bool{}
	}
	for _, l := range lost {
		rp.faults[blob][l] = true
	}
}

// done forgets a blob's faults and order once its new manifest is committed.
func (rp *repairPlanner) done(blob string) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	delete(rp.faults, blob)
	delete(rp.pending, blob)
}

// authorize checks that p may commit m, which moves the shards moved: p is
// the worker the pending order for m's blob was handed to (or an operator,
// who may act for any worker), and every new holder is a target of the
// order. A repairer may move shards the order did not name (it re-places
// any it found missing or corrupt while reading), which is why the new
// holders must then prove they hold them (checkNewHolders). An order that
// timed out and went to another worker no longer authorizes the first one.
func (rp *repairPlanner) authorize(p *principal, m *storage.Manifest, moved []storage.ShardLoc) error {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	o := rp.pending[m.Hash]
	switch {
	case o == nil:
		return fmt.Errorf("%w: blob %s: no repair of it is ordered (a new leader plans repairs again)", errNoRepairOrder, m.Hash)
	case p.Role != api.CredOperator && p.Peer != o.worker:
		return fmt.Errorf("%w: blob %s: its repair is ordered from worker %q, not %q", errNoRepairOrder, m.Hash, o.worker, p.Peer)
	}
	for _, loc := range moved {
		if to := m.Segments[loc.Segment].Shards[loc.Index].Peer; !slices.Contains(o.order.Targets, to) {
			return fmt.Errorf("%w: blob %s: %s moves to peer %q, which is not a target of the repair order", errNoRepairOrder, m.Hash, loc, to)
		}
	}
	return nil
}

// errNoRepairOrder refuses a repair commit the leader did not order; it
// answers 409 like any other attempt to change a committed manifest.
var errNoRepairOrder = fmt.Errorf("%w: not an ordered repair", ledger.ErrManifestCommitted)

// ordersFor hands a storage peer the orders assigned to it, once each.
func (rp *repairPlanner) ordersFor(worker string) []api.RepairOrder {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	var out []api.RepairOrder
	for _, o := range rp.pending {
		if o.worker == worker && !o.delivered {
			o.delivered = true
			out = append(out, o.order)
		}
	}
	return out
}

// planRepairs finds blobs with shards on peers down past the grace period,
// or reported missing or corrupt, and assigns each to a live storage peer
// that will fetch k shards, rebuild the lost ones onto other live peers, and
// commit the new placement. The data never passes through the leader.
func (s *Server) planRepairs(now time.Time) {
	for _, o := range s.repairs.plan(s.store.FSM(), now) {
		s.metrics.repairsPlanned.Inc() // metrics
		s.log.Info("repair planned", "blob", o.order.Blob, "shards", len(o.order.Lost), "peer", o.worker)
	}
}

// plan orders the repairs fsm's ledger needs at now, except those with an
// order still in time, and returns the new orders.
func (rp *repairPlanner) plan(fsm *ledger.FSM, now time.Time) []*repairOrder {
	needs, live := rp.needs(fsm, now)
	if len(live) == 0 {
		return nil
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	var planned []*repairOrder
	for i, n := range needs {
		if o := rp.pending[n.blob]; o != nil && now.Before(o.deadline) {
			continue
		}
		o := &repairOrder{
			order:  api.RepairOrder{Blob: n.blob, Lost: n.lost, Targets: live},
			worker: live[(i+int(now.Unix()))%len(live)], deadline: now.Add(rp.timeout),
		}
		rp.pending[n.blob] = o
		planned = append(planned, o)
	}
	return planned
}

// repairNeed is a blob and the shards of it to rebuild.
type repairNeed struct {
	blob string
	lost []storage.ShardLoc
}

// needs reads, under the ledger's read lock, the blobs with lost shards,
// sorted by blob hash, and, if there are any, the live storage peers. It
// looks only at the candidates the ledger's blob index names (see
// Ledger.RepairCandidates), so a tick with nothing to repair costs neither
// in the number of blobs nor in the number of peers.
func (rp *repairPlanner) needs(fsm *ledger.FSM, now time.Time) (needs []repairNeed, live []string) {
	faulty := rp.faultyBlobs()
	fsm.View(func(l *ledger.Ledger) {
		gone := l.GoneAt(now, rp.grace)
		for _, h := range l.RepairCandidates(gone, faulty) {
			if lost := rp.lostShards(l.Manifest(h), gone); len(lost) > 0 {
				needs = append(needs, repairNeed{h, lost})
			}
		}
		if len(needs) == 0 {
			return // listing every peer (sorted) was most of a quiet round's cost at 10,000 workers
		}
		for _, p := range l.StoragePeers(true) {
			live = append(live, p.ID)
		}
	})
	return needs, live
}

// lostShards are a manifest's shards whose holder is gone, unplaced, or
// reported faulty, in shard order (faults are kept in a map; sorting keeps
// orders the same from one plan to the next). Called under the ledger's
// read lock.
func (rp *repairPlanner) lostShards(m *storage.Manifest, gone func(string) bool) []storage.ShardLoc {
	lost := m.Lost(func(peer string) bool { return !gone(peer) })
	rp.mu.Lock()
	for loc := range rp.faults[m.Hash] {
		if !slices.Contains(lost, loc) {
			lost = append(lost, loc)
		}
	}
	rp.mu.Unlock()
	slices.SortFunc(lost, compareShardLoc)
	return lost
}

func compareShardLoc(a, b storage.ShardLoc) int {
	if a.Segment != b.Segment {
		return a.Segment - b.Segment
	}
	return a.Index - b.Index
}

func (s *Server) handleReportFaults(w http.ResponseWriter, r *http.Request) {
	if err := s.mayRead(r, r.PathValue("hash")); err != nil {
		writeErr(w, err)
		return
	}
	var req api.FaultReport
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	hash := r.PathValue("hash")
	var m *storage.Manifest
	s.store.FSM().View(func(l *ledger.Ledger) { m = l.Manifest(hash) })
	if m == nil {
		writeErr(w, fmt.Errorf("%w: no manifest for %s", ledger.ErrBlobMissing, hash))
		return
	}
	for _, l := range req.Lost {
		if l.Segment < 0 || l.Segment >= len(m.Segments) || l.Index < 0 || l.Index >= m.K+m.M {
			writeErr(w, fmt.Errorf("%w: blob %s has no %s", errBadRequest, hash, l))
			return
		}
	}
	s.repairs.report(hash, req.Lost)
	s.log.Warn("shard faults reported", "blob", hash, "shards", len(req.Lost))
	writeJSON(w, http.StatusOK, struct{}{})
}

// faultyBlobs lists the blobs with reported faults.
func (rp *repairPlanner) faultyBlobs() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := make([]string, 0, len(rp.faults))
	for h := range rp.faults {
		out = append(out, h)
	}
	return out
}
