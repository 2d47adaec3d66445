package server

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/storage"
)

// maxLeasePerCall bounds one lease request.
const maxLeasePerCall = 1024

// handleLease grants up to req.Max tasks (see lease).
func (s *Server) handleLease(w http.ResponseWriter, r *http.Request) {
	req, err := readBody(r, decodeLeaseBody)
	if err != nil {
		writeErr(w, err)
		return
	}
	resp, err := s.lease(r.Context(), principalOf(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeLeaseResponse(w, resp)
}

// lease grants up to req.Max tasks to the worker p speaks for, over HTTP
// or a worker stream. With nothing queued it long-polls: it waits for the
// ledger to change rather than have workers busy-poll. Reports the request
// carries are applied first (see leaseAfterReports).
func (s *Server) lease(ctx context.Context, p *principal, req *api.LeaseRequest) (api.LeaseResponse, error) {
	var err error
	if req.Worker, err = p.speaksFor(req.Worker); err != nil {
		return api.LeaseResponse{}, err
	}
	req.Cores = p.capCores(req.Cores)
	if req.Max < 1 || req.Max > maxLeasePerCall {
		return api.LeaseResponse{}, fmt.Errorf("%w: lease needs a worker id and 1 <= max <= %d", errBadRequest, maxLeasePerCall)
	}
	if err := s.seeWorker(ctx, workerSeen{id: req.Worker, addr: req.Address, cores: req.Cores, engines: req.Engines, storage: req.Storage}); err != nil {
		return api.LeaseResponse{}, err
	}
	if len(req.Reports) > 0 {
		return s.leaseAfterReports(ctx, req)
	}
	if s.distrusted(req.Worker) { // refused before it proposes anything; Apply refuses it too
		return api.LeaseResponse{}, fmt.Errorf("%w: %s", ledger.ErrDistrusted, req.Worker)
	}
	grants, err := s.leaseOrWait(ctx, req)
	if err != nil {
		return api.LeaseResponse{}, err
	}
	return api.LeaseResponse{Tasks: s.assignments(grants)}, nil
}

// leaseAfterReports serves a lease that carries reports: one call where an
// old worker makes two (report, then lease), which is most of what a short
// task costs the leader (its HTTP serving, not the ledger). The reports'
// command and the lease's are proposed together, in that order (one Raft
// entry when the proposer's batch allows, and one commit's wait): a task
// the worker just finished is not leased to it again, and its slot is
// free. The reports are checked and answered exactly as handleReport does.
// Once they are committed the answer is 200 and says which were accepted,
// whatever becomes of the lease (the worker distrusted, leadership lost):
// then it grants nothing, and the worker, seeing no error, asks again.
func (s *Server) leaseAfterReports(ctx context.Context, req *api.LeaseRequest) (api.LeaseResponse, error) {
	if err := s.checkReportBlobs(req.Reports); err != nil {
		return api.LeaseResponse{}, err
	}
	start := time.Now()
	cmds := []ledger.Command{&ledger.CompleteTasksCommand{Worker: req.Worker, Now: start.UnixNano(), Reports: req.Reports}}
	trusted := !s.distrusted(req.Worker)
	if trusted && s.hasWorkFor(req) {
		cmds = append(cmds, s.leaseCommand(req, start))
	}
	resps, errs := s.store.ProposeInOrder(ctx, cmds...)
	if errs[0] != nil {
		return api.LeaseResponse{}, errs[0]
	}
	resp := api.LeaseResponse{Accepted: s.reportsApplied(ctx, req.Worker, req.Reports, resps[0], start)}
	var grants []ledger.Grant
	if len(cmds) > 1 && errs[1] == nil {
		grants = s.granted(resps[1], start)
	}
	if trusted && len(grants) == 0 && req.Wait > 0 { // nothing yet: long-poll as a plain lease does
		var err error
		if grants, err = s.leaseOrWait(ctx, req); err != nil {
			s.log.Debug("lease after reports granted nothing", "peer", req.Worker, "err", err)
		}
	}
	resp.Tasks = s.assignments(grants)
	return resp, nil
}

// decodeLeaseBody decodes a lease's body (a request's or a worker stream
// frame's) and checks its reports as decodeReportBody does.
func decodeLeaseBody(body []byte) (*api.LeaseRequest, error) {
	var req api.LeaseRequest
	if err := decodeFast(body, &req, fastDecodeLease); err != nil {
		return nil, err
	}
	if err := checkReportSizes(req.Reports); err != nil {
		return nil, err
	}
	return &req, nil
}

func (s *Server) leaseOrWait(ctx context.Context, req *api.LeaseRequest) ([]ledger.Grant, error) {
	wait := min(req.Wait, s.cfg.MaxLeaseWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		wake := s.work.wait() // taken before the check, so no change is missed
		moved := s.store.LeaderChanged()
		if !s.store.IsLeader() { // a long poll ends when this server stops leading
			return nil, fmt.Errorf("%w: %w: leadership lost during a lease wait", store.ErrNotLeader, store.ErrNotProposed)
		}
		if s.hasWorkFor(req) {
			start := time.Now()
			resp, err := s.store.Propose(ctx, s.leaseCommand(req, start))
			if err != nil {
				return nil, err
			}
			if grants := s.granted(resp, start); len(grants) > 0 {
				return grants, nil
			}
		}
		if wait <= 0 {
			return nil, nil
		}
		select {
		case <-wake:
		case <-moved:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// hasWorkFor says whether the ledger has a task queued the worker could run.
func (s *Server) hasWorkFor(req *api.LeaseRequest) bool {
	var queued bool
	s.store.FSM().View(func(l *ledger.Ledger) { queued = l.HasWorkFor(req.Worker, req.Engines) })
	return queued
}

// leaseCommand is the command that leases req's tasks at now.
func (s *Server) leaseCommand(req *api.LeaseRequest, now time.Time) *ledger.LeaseTasksCommand {
	return &ledger.LeaseTasksCommand{
		Worker: req.Worker, Max: req.Max, Now: now.UnixNano(), Slack: int64(s.cfg.LeaseSlack), Engines: req.Engines,
		Draw: rand.Uint64(), // the adaptive jobs' choices (see ledger's replicas.go)
	}
}

// granted is a lease command's grants, counted in the metrics.
func (s *Server) granted(resp any, start time.Time) []ledger.Grant {
	grants, _ := resp.([]ledger.Grant)
	if len(grants) > 0 {
		s.metrics.leaseGrant.Observe(time.Since(start).Seconds()) // metrics
		s.metrics.tasksLeased.Add(float64(len(grants)))           // metrics
	}
	return grants
}

// assignments expands grants into everything a worker needs to run them.
// The slice may come from a pool: a caller done with it (the answer
// encoded) may give it back with putAssignments.
func (s *Server) assignments(grants []ledger.Grant) []api.Assignment {
	out := takeAssignments(len(grants))
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, g := range grants {
			out = append(out, l.Assignment(g))
		}
	})
	return out
}

// assignmentSlices holds lease answers' assignment slices between calls
// (a lease of 8 tasks built 2 KB of them, then encoded and dropped them).
var assignmentSlices = sync.Pool{New: func() any { return new([]api.Assignment) }}

// maxPooledAssignments bounds the slices kept.
const maxPooledAssignments = 64

func takeAssignments(n int) []api.Assignment {
	out := *assignmentSlices.Get().(*[]api.Assignment)
	if cap(out) < n {
		return make([]api.Assignment, 0, n)
	}
	return out[:0]
}

// putAssignments gives back a slice assignments returned, once nothing
// refers to it or to what it holds.
func putAssignments(a []api.Assignment) {
	if cap(a) == 0 || cap(a) > maxPooledAssignments {
		return
	}
	clear(a[:cap(a)]) // keeps no task's strings alive
	a = a[:0]
	assignmentSlices.Put(&a)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	req, err := readBody(r, decodeReportBody)
	if err != nil {
		writeErr(w, err)
		return
	}
	accepted, err := s.report(r.Context(), principalOf(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ReportResponse{Accepted: accepted})
}

// report commits the reports of the worker p speaks for, over HTTP or a
// worker stream, and says which the ledger accepted.
func (s *Server) report(ctx context.Context, p *principal, req *api.ReportRequest) ([]bool, error) {
	var err error
	if req.Worker, err = p.speaksFor(req.Worker); err != nil {
		return nil, err
	}
	if err := s.seeWorker(ctx, workerSeen{id: req.Worker}); err != nil {
		return nil, err
	}
	return s.applyReports(ctx, req.Worker, req.Reports)
}

// applyReports commits a worker's reports (POST /v1/report) and says per
// report whether the ledger accepted it. A report naming a stdout blob the
// grid does not have refuses the whole call before anything is proposed.
func (s *Server) applyReports(ctx context.Context, worker string, reports []api.Report) ([]bool, error) {
	if err := s.checkReportBlobs(reports); err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := s.store.Propose(ctx, &ledger.CompleteTasksCommand{Worker: worker, Now: start.UnixNano(), Reports: reports})
	if err != nil {
		return nil, err
	}
	return s.reportsApplied(ctx, worker, reports, resp, start), nil
}

// checkReportBlobs refuses reports naming a stdout blob the grid lacks.
func (s *Server) checkReportBlobs(reports []api.Report) error {
	for _, rep := range reports {
		if rep.StdoutBlob != "" && !s.hasBlob(rep.StdoutBlob) {
			return fmt.Errorf("%w: job %s task %d: stdout blob %s", ledger.ErrBlobMissing, rep.Job, rep.Index, rep.StdoutBlob)
		}
	}
	return nil
}

// reportsApplied is what follows a completion's commit, however it was
// proposed: its answer, the metrics and the grid's engine learning.
func (s *Server) reportsApplied(ctx context.Context, worker string, reports []api.Report, resp any, start time.Time) []bool {
	s.metrics.reportApply.Observe(time.Since(start).Seconds()) // metrics
	accepted, _ := resp.([]bool)
	s.metrics.countReports(reports, accepted) // metrics
	s.learnEngines(ctx, worker, reports, accepted)
	return accepted
}

// decodeReportBody decodes a report's body (a request's or a worker stream
// frame's) and checks what needs no ledger: each report's output fits
// inline.
func decodeReportBody(body []byte) (*api.ReportRequest, error) {
	var req api.ReportRequest
	if err := decodeFast(body, &req, fastDecodeReport); err != nil {
		return nil, err
	}
	if err := checkReportSizes(req.Reports); err != nil {
		return nil, err
	}
	return &req, nil
}

// checkReportSizes refuses a report whose output does not fit inline.
func checkReportSizes(reports []api.Report) error {
	for _, rep := range reports {
		// The label is formatted only for a report over the limit: a
		// Sprintf per report was a visible share of a busy leader's CPU.
		if n := len(rep.Stdout) + len(rep.Stderr); n > storage.MaxInline {
			return storage.CheckInline(fmt.Sprintf("output of job %s task %d", rep.Job, rep.Index), n)
		}
	}
	return nil
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req api.ReleaseRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	var err error
	if req.Worker, err = speaksFor(r, req.Worker); err != nil {
		writeErr(w, err)
		return
	}
	resp, err := s.commit(r, &ledger.ReleaseTasksCommand{Worker: req.Worker, Now: time.Now().UnixNano(), Tasks: req.Tasks})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": resp})
}

// handleHeartbeat answers a worker's sign of life (see heartbeat).
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req api.HeartbeatRequest
	if err := readHeartbeatJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	var resp api.HeartbeatResponse
	if err := s.heartbeat(r.Context(), principalOf(r), &req, &resp); err != nil {
		writeErr(w, err)
		return
	}
	writeHeartbeatResponse(w, &resp)
}

// heartbeat answers a sign of life of the worker p speaks for, over HTTP
// or a worker stream. A heartbeat that changes nothing the ledger must
// know (the same address, cores, engines, roles and state as committed)
// proposes nothing: its time and running count stay in the leader's
// memory (liveness), and only a transition (new, back from down, draining,
// changed) is committed, as seeWorker does; a silent worker's "down" comes
// from the leader's loop. What it reads of the ledger it reads in one
// View, and it is answered by hand in the common shape
// (appendHeartbeatResponse), so a heartbeat costs the leader little
// beyond the request it arrives in.
// Its answer is written to resp (the caller's, so it need not be on the
// heap).
func (s *Server) heartbeat(ctx context.Context, p *principal, req *api.HeartbeatRequest, resp *api.HeartbeatResponse) error {
	return s.heartbeatKeeping(ctx, nil, p, req, resp)
}

// heartbeatKeeping is heartbeat keeping the worker's liveness record in
// keep (a stream's; see liveness.heard).
func (s *Server) heartbeatKeeping(ctx context.Context, keep *keptRecord, p *principal, req *api.HeartbeatRequest, resp *api.HeartbeatResponse) error {
	var err error
	if req.Worker, err = p.speaksFor(req.Worker); err != nil {
		return err
	}
	req.Cores = p.capCores(req.Cores)
	if err := s.seeWorker(ctx, workerSeen{id: req.Worker, addr: req.Address, cores: req.Cores, draining: req.Draining, engines: req.Engines,
		storage: req.Storage, storageOnly: req.StorageOnly, heartbeat: true, running: len(req.Running), keep: keep}); err != nil {
		return err
	}
	now := time.Now()
	if req.Held != nil {
		s.releaseForgotten(ctx, req.Worker, req.Held, now)
	}
	s.keepPausedLeases(ctx, req, now)
	*resp = api.HeartbeatResponse{TTL: s.cfg.WorkerTTL, PauseKeep: s.cfg.MaxPauseKeep}
	if req.Storage || req.StorageOnly {
		resp.Repairs = s.repairOrdersFor(req.Worker)
	}
	s.store.FSM().View(func(l *ledger.Ledger) {
		resp.Distrusted = l.Distrusted(req.Worker)
		for _, ref := range req.Running {
			if !l.HoldsLease(req.Worker, ref) {
				resp.Stale = append(resp.Stale, ref)
			}
		}
	})
	return nil
}

// distrusted reports whether the ledger distrusts worker (see ledger's
// replicas.go): it is leased nothing until an operator trusts it.
func (s *Server) distrusted(worker string) bool {
	var d bool
	s.store.FSM().View(func(l *ledger.Ledger) { d = l.Distrusted(worker) })
	return d
}

// workerSeen is what a worker's request says about it.
type workerSeen struct {
	id, addr    string
	cores       int
	draining    bool
	storage     bool
	storageOnly bool // a storage peer that runs no tasks (a server's)
	engines     []string
	heartbeat   bool // a heartbeat, which says how many tasks the worker runs
	running     int  // with heartbeat: how many
	// keep is the liveness record a worker stream's reader keeps (nil
	// elsewhere: leases and reports are served on goroutines of their own).
	keep *keptRecord
}

// seeWorker records that a worker (or storage-only peer) was heard from.
// Only a change of state (new, back from down, draining, new address, cores,
// engines or roles) is committed; the rest stays in memory. A storage peer's
// address goes to StorageAddress; it is the peer's Address too unless the
// peer is a server (same id), whose Address is its API address followers
// forward to.
func (s *Server) seeWorker(ctx context.Context, ws workerSeen) error {
	id, cores := ws.id, ws.cores
	if id == "" {
		return fmt.Errorf("%w: worker id is empty", errBadRequest)
	}
	if !s.store.IsLeader() {
		return store.ErrNotLeader
	}
	s.liveness.heard(ws.keep, id, time.Now(), ws.running, ws.heartbeat)
	want := api.PeerAlive
	if ws.draining {
		want = api.PeerDraining
	}
	roles := peerRoles(ws)
	var addr, storageAddr string
	var same bool
	s.store.FSM().View(func(l *ledger.Ledger) {
		p := l.PeerInView(id) // read in place: copying the record was a visible share of a heartbeat
		addr, storageAddr = peerAddrs(ws, p)
		same = p != nil && p.State == want && (addr == "" || addr == p.Address) && (storageAddr == "" || storageAddr == p.StorageAddress) &&
			(cores == 0 || cores == p.Cores) && (len(ws.engines) == 0 || slices.Equal(ws.engines, p.Engines)) &&
			!slices.ContainsFunc(roles, func(r string) bool { return !slices.Contains(p.Roles, r) })
	})
	if same {
		return nil
	}
	_, err := s.store.Propose(ctx, &ledger.UpsertPeerCommand{
		ID: id, Address: addr, StorageAddress: storageAddr, Roles: roles, Cores: cores, State: want, Now: time.Now().UnixNano(), Engines: ws.engines,
	})
	return err
}

// The roles a worker's request may give it, shared (never changed): a
// heartbeat builds no slice for them.
var (
	rolesWorker        = []string{api.RoleWorker}
	rolesWorkerStorage = []string{api.RoleWorker, api.RoleStorage}
	rolesStorage       = []string{api.RoleStorage}
)

// peerRoles is the roles a worker's request says it has.
func peerRoles(ws workerSeen) []string {
	switch {
	case ws.storageOnly:
		return rolesStorage
	case ws.storage:
		return rolesWorkerStorage
	}
	return rolesWorker
}

// peerAddrs is a peer's API and storage address from its request and its
// record (p, nil for a new peer): a storage peer's address is its storage
// address, and its API address too unless it runs no tasks or is a server
// (whose API address followers forward to).
func peerAddrs(ws workerSeen, p *ledger.Peer) (addr, storageAddr string) {
	addr = ws.addr
	if ws.storage || ws.storageOnly {
		storageAddr = ws.addr
		if ws.storageOnly || (p != nil && slices.Contains(p.Roles, api.RoleServer)) {
			addr = ""
		}
	}
	return addr, storageAddr
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.peerList())
}

// peerList is every peer this server knows: the Raft group's servers, then
// the ledger's other peers, one line per id (a server that is also a worker
// or storage peer is merged into its server line). What `peergrid peers`
// and the dashboard show. O(peers), never O(leases) or O(tasks).
func (s *Server) peerList() []api.Peer {
	out := s.serverPeers()
	index := map[string]int{}
	for i, p := range out {
		index[p.ID] = i
	}
	var peers []ledger.Peer
	var running map[string]int
	s.store.FSM().View(func(l *ledger.Ledger) { peers, running = l.Peers(), l.RunningByWorker() })
	for _, lp := range peers {
		ap := s.describePeer(&lp, running[lp.ID])
		if i, ok := index[lp.ID]; ok { // a server that is also a worker: one line
			ap.State, ap.Address = mergeState(out[i].State, ap.State), out[i].Address
			out[i] = ap
			continue
		}
		out = append(out, ap)
	}
	return out
}

func (s *Server) describePeer(p *ledger.Peer, leased int) api.Peer {
	ap := api.Peer{ID: p.ID, Address: cmp.Or(p.Address, p.StorageAddress), Roles: p.Roles, Cores: p.Cores, State: p.State,
		Running: leased, Leased: leased, Done: p.Done, Failed: p.Failed, CPUSeconds: time.Duration(p.CPUNanos).Seconds(), LastSeen: time.Unix(0, p.Since).UTC(), Engines: p.Engines,
		Agreed: p.Agreed, Outvoted: p.Outvoted, Streak: p.Streak, Distrusted: p.Distrusted}
	if n, ok := s.reportedRunning(p.ID); ok {
		ap.Running = n // what it runs, not what it fetched ahead
	}
	if t, ok := s.liveness.lastSeen(p.ID); ok {
		ap.LastSeen = t.UTC()
	} else if slices.Contains(p.Roles, api.RoleServer) {
		// A server sends no heartbeats (Raft says whether it is alive), so
		// the time it registered is no sighting: this server sees itself
		// now; of another there is nothing to say.
		ap.LastSeen = time.Time{}
		if p.ID == s.cfg.Store.ID {
			ap.LastSeen = time.Now().UTC()
		}
	}
	return ap
}

// mergeState is the state of a peer with two roles: down if either is.
func mergeState(server, worker string) string {
	if server == api.PeerDown || worker == api.PeerDown {
		return api.PeerDown
	}
	if worker == api.PeerDraining {
		return worker
	}
	return server
}

// serverPeers lists the Raft group's servers.
func (s *Server) serverPeers() []api.Peer {
	out := []api.Peer{}
	f := s.store.Raft().GetConfiguration()
	if f.Error() != nil {
		return out
	}
	_, leaderID := s.store.Leader()
	servers := f.Configuration().Servers
	sort.Slice(servers, func(a, b int) bool { return servers[a].ID < servers[b].ID })
	for _, srv := range servers {
		state := api.PeerAlive
		if leaderID == "" {
			state = api.PeerDown
		}
		roles := []string{api.RoleServer}
		if srv.Suffrage != raft.Voter {
			roles = append(roles, "nonvoter")
		}
		addr := s.serverHTTPAddr(string(srv.ID))
		if addr == "" {
			addr = string(srv.Address)
		}
		out = append(out, api.Peer{ID: string(srv.ID), Address: addr, Roles: roles, State: state})
	}
	return out
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	_, leaderID := s.store.Leader()
	writeJSON(w, http.StatusOK, api.Status{
		ID: s.cfg.Store.ID, Leader: leaderID, RaftState: store.StateName(s.store.Raft().State()), LastIndex: s.store.Raft().LastIndex(),
	})
}
