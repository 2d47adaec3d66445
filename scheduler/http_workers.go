package scheduler

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// maxLeasePerCall bounds one lease request.
const maxLeasePerCall = 1024

// handleLease grants up to req.Max tasks. With nothing queued it long-polls:
// it waits for the ledger to change rather than have workers busy-poll.
func (s *Server) handleLease(w http.ResponseWriter, r *http.Request) {
	var req api.LeaseRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if req.Worker == "" || req.Max < 1 || req.Max > maxLeasePerCall {
		writeErr(w, fmt.Errorf("%w: lease needs a worker id and 1 <= max <= %d", errBadRequest, maxLeasePerCall))
		return
	}
	if err := s.seeWorker(r.Context(), workerSeen{id: req.Worker, addr: req.Address, cores: req.Cores, engines: req.Engines, storage: req.Storage}); err != nil {
		writeErr(w, err)
		return
	}
	grants, err := s.leaseOrWait(r.Context(), &req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.LeaseResponse{Tasks: s.assignments(grants)})
}

func (s *Server) leaseOrWait(ctx context.Context, req *api.LeaseRequest) ([]Grant, error) {
	wait := min(req.Wait, s.cfg.MaxLeaseWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		wake := s.work.wait() // taken before the check, so no change is missed
		var queued bool
		s.store.FSM().View(func(l *Ledger) { queued = l.hasQueued() })
		if queued {
			resp, err := s.store.Propose(ctx, cmdLeaseTasks, &LeaseTasksCommand{
				Worker: req.Worker, Max: req.Max, Now: time.Now().UnixNano(), Slack: int64(s.cfg.LeaseSlack), Engines: req.Engines,
			})
			if err != nil {
				return nil, err
			}
			if grants, _ := resp.([]Grant); len(grants) > 0 {
				s.counters.tasksLeased.Add(uint64(len(grants))) // metrics
				return grants, nil
			}
		}
		if wait <= 0 {
			return nil, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// assignments expands grants into everything a worker needs to run them.
func (s *Server) assignments(grants []Grant) []api.Assignment {
	out := make([]api.Assignment, 0, len(grants))
	s.store.FSM().View(func(l *Ledger) {
		for _, g := range grants {
			j := l.jobs[g.Job]
			a := api.Assignment{
				Job: g.Job, Index: g.Index, Attempt: g.Attempt, ModuleHash: j.Spec.ModuleHash, Name: j.Spec.Name,
				Args: j.Spec.TaskArgs(g.Index), Env: j.Spec.Env, Seed: TaskSeed(g.Job, g.Index),
				Timeout: j.Spec.Timeout, Memory: j.Spec.Memory, MaxOutput: j.Spec.MaxOutput, Engine: j.Spec.Engine,
				K: j.Spec.DataShards, M: j.Spec.ParityShards,
				Expiry: time.Unix(0, g.Expiry).UTC(),
			}
			if g.Index < len(j.Spec.Inputs) {
				in := j.Spec.Inputs[g.Index].Hash
				if data, ok := l.blobs[in]; ok {
					a.Stdin = data
				} else {
					a.InputHash = in
				}
			}
			out = append(out, a)
		}
	})
	return out
}

// TaskSeed is the seed of the random numbers a task sees: fixed per task, so
// every worker (and every replica) of a task gives the same bytes.
func TaskSeed(job string, index int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", job, index)
	return h.Sum64()
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	var req api.ReportRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.seeWorker(r.Context(), workerSeen{id: req.Worker}); err != nil {
		writeErr(w, err)
		return
	}
	cmd := &CompleteTasksCommand{Worker: req.Worker, Now: time.Now().UnixNano(), Reports: make([]TaskReport, len(req.Reports))}
	for i, rep := range req.Reports {
		if rep.StdoutBlob != "" && !s.hasBlob(rep.StdoutBlob) {
			writeErr(w, fmt.Errorf("%w: job %s task %d: stdout blob %s", ErrBlobMissing, rep.Job, rep.Index, rep.StdoutBlob))
			return
		}
		if err := storage.CheckInline(fmt.Sprintf("output of job %s task %d", rep.Job, rep.Index), len(rep.Stdout)+len(rep.Stderr)); err != nil {
			writeErr(w, err)
			return
		}
		cmd.Reports[i] = TaskReport{Job: rep.Job, Index: rep.Index, Attempt: rep.Attempt, ExitCode: rep.ExitCode,
			ErrorKind: rep.ErrorKind, Error: rep.Error, Duration: int64(rep.Duration), Stdout: rep.Stdout, Stderr: rep.Stderr, Engine: rep.Engine,
			StdoutBlob: rep.StdoutBlob}
	}

	resp, err := s.commit(r, cmdCompleteTask, cmd)
	if err != nil {
		writeErr(w, err)
		return
	}
	accepted, _ := resp.([]bool)
	s.counters.countReports(cmd.Reports, accepted) // metrics
	writeJSON(w, http.StatusOK, api.ReportResponse{Accepted: accepted})
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req api.ReleaseRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	refs := make([]TaskRef, len(req.Tasks))
	for i, t := range req.Tasks {
		refs[i] = TaskRef(t)
	}
	resp, err := s.commit(r, cmdReleaseTasks, &ReleaseTasksCommand{Worker: req.Worker, Now: time.Now().UnixNano(), Tasks: refs})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": resp})
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req api.HeartbeatRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.seeWorker(r.Context(), workerSeen{id: req.Worker, addr: req.Address, cores: req.Cores, draining: req.Draining, engines: req.Engines,
		storage: req.Storage, storageOnly: req.StorageOnly}); err != nil {
		writeErr(w, err)
		return
	}
	if req.Held != nil {
		s.releaseForgotten(r.Context(), req.Worker, req.Held)
	}
	resp := api.HeartbeatResponse{TTL: s.cfg.WorkerTTL}
	if req.Storage || req.StorageOnly {
		resp.Repairs = s.repairs.ordersFor(req.Worker)
	}
	s.store.FSM().View(func(l *Ledger) {
		for _, ref := range req.Running {
			if t := l.peekTask(ref.Job, ref.Index); t == nil || t.State != tasks.TaskLeased || t.Attempts != ref.Attempt || t.Worker != req.Worker {
				resp.Stale = append(resp.Stale, ref)
			}
		}
	})
	writeJSON(w, http.StatusOK, resp)
}

// releaseForgotten hands back leases the ledger gives this worker but the
// worker does not hold: a grant whose reply was lost (the leader died, the
// request was cancelled). Only leases older than a TTL count, so a grant
// whose reply is still on its way is left alone.
func (s *Server) releaseForgotten(ctx context.Context, worker string, held []api.TaskRef) {
	holds := make(map[TaskRef]bool, len(held))
	for _, h := range held {
		holds[TaskRef(h)] = true
	}
	cutoff := time.Now().Add(-s.cfg.WorkerTTL).UnixNano()
	var forgotten []TaskRef
	s.store.FSM().View(func(l *Ledger) {
		for _, ref := range l.leasesOf(worker) {
			j := l.jobs[ref.Job]
			granted := j.Tasks.at(ref.Index).Expiry - int64(j.Spec.Timeout) - int64(s.cfg.LeaseSlack)
			if !holds[ref] && granted < cutoff {
				forgotten = append(forgotten, ref)
			}
		}
	})
	if len(forgotten) > 0 {
		s.log.Info("releasing leases the worker does not hold", "peer", worker, "count", len(forgotten))
		s.propose(ctx, cmdReleaseTasks, &ReleaseTasksCommand{Worker: worker, Now: time.Now().UnixNano(), Tasks: forgotten})
	}
}

// workerSeen is what a worker's request says about it.
type workerSeen struct {
	id, addr    string
	cores       int
	draining    bool
	storage     bool
	storageOnly bool // a storage peer that runs no tasks (a server's)
	engines     []string
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
		return ErrNotLeader
	}
	s.liveness.touch(id, time.Now())
	want := api.PeerAlive
	if ws.draining {
		want = api.PeerDraining
	}
	var p peer
	var known bool
	s.store.FSM().View(func(l *Ledger) {
		if lp := l.peers[id]; lp != nil {
			p, known = *lp, true
		}
	})
	var roles []string
	if !ws.storageOnly {
		roles = append(roles, api.RoleWorker)
	}
	addr, storageAddr := ws.addr, ""
	if ws.storage || ws.storageOnly {
		roles = append(roles, api.RoleStorage)
		storageAddr = ws.addr
		if ws.storageOnly || slices.Contains(p.Roles, api.RoleServer) {
			addr = ""
		}
	}
	if known && p.State == want && (addr == "" || addr == p.Address) && (storageAddr == "" || storageAddr == p.StorageAddress) &&
		(cores == 0 || cores == p.Cores) && (len(ws.engines) == 0 || slices.Equal(ws.engines, p.Engines)) &&
		!slices.ContainsFunc(roles, func(r string) bool { return !slices.Contains(p.Roles, r) }) {
		return nil
	}
	_, err := s.store.Propose(ctx, cmdUpsertPeer, &UpsertPeerCommand{
		ID: id, Address: addr, StorageAddress: storageAddr, Roles: roles, Cores: cores, State: want, Now: time.Now().UnixNano(), Engines: ws.engines,
	})
	return err
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.peerList())
}

// peerList is every peer this server knows: the Raft group's servers, then
// the ledger's other peers, one line per id (a server that is also a worker
// or storage peer is merged into its server line). What `peergrid peers`
// and the dashboard show. O(peers + leases), never O(tasks).
func (s *Server) peerList() []api.Peer {
	out := s.serverPeers()
	index := map[string]int{}
	for i, p := range out {
		index[p.ID] = i
	}
	s.store.FSM().View(func(l *Ledger) {
		running := map[string]int{}
		for k := range l.leased {
			running[l.jobs[k.Job].Tasks.at(k.Index).Worker]++
		}
		for _, id := range sortedKeys(l.peers) {
			ap := s.describePeer(l.peers[id], running[id])
			if i, ok := index[id]; ok { // a server that is also a worker: one line
				ap.State, ap.Address = mergeState(out[i].State, ap.State), out[i].Address
				out[i] = ap
				continue
			}
			out = append(out, ap)
		}
	})
	return out
}

func (s *Server) describePeer(p *peer, running int) api.Peer {
	ap := api.Peer{ID: p.ID, Address: cmp.Or(p.Address, p.StorageAddress), Roles: p.Roles, Cores: p.Cores, State: p.State,
		Running: running, Done: p.Done, LastSeen: time.Unix(0, p.Since).UTC(), Engines: p.Engines}
	if t, ok := s.liveness.lastSeen(p.ID); ok {
		ap.LastSeen = t.UTC()
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
		ID: s.cfg.Store.ID, Leader: leaderID, RaftState: raftStateName(s.store.Raft().State()), LastIndex: s.store.Raft().LastIndex(),
	})
}
