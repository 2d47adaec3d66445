package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
)

// MaxVoters is the most voters a group has; more servers join as non-voters.
const MaxVoters = 5

func (s *Server) self() api.ServerInfo {
	info := api.ServerInfo{ID: s.cfg.Store.ID, RaftAddr: s.store.RaftAddr(), HTTPAddr: s.cfg.HTTPAddr, CommandTypes: s.commandTypes()}
	info.HasState = s.inGroup()
	if _, id := s.store.Leader(); id != "" {
		info.Leader, info.LeaderHTTP = id, s.serverHTTPAddr(id)
	}
	if ca := s.tls.authority(); ca != nil {
		info.CA = string(auth.CertPEM(ca.Cert.Raw))
		if s.cfg.Token != "" {
			info.CAProof = caProof(s.cfg.Token, ca.Cert.Raw)
		}
	}
	return info
}

// inGroup reports whether this server has a Raft configuration (bootstrapped,
// joined, or restored from its data dir).
func (s *Server) inGroup() bool {
	f := s.store.Raft().GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

func (s *Server) handleSelf(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.self())
}

// handleJoin adds a server to the group (a voter while there are fewer than
// MaxVoters) and records its HTTP address in the ledger. Idempotent.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		writeErr(w, fmt.Errorf("%w: join needs id, raft_addr and http_addr", errBadRequest))
		return
	}
	var held []string
	s.store.FSM().View(func(l *ledger.Ledger) { held = l.PeerCredentialsOf(req.ID, time.Now().UnixNano()) })
	if len(held) > 0 {
		writeErr(w, fmt.Errorf("%w: %s is a worker's id (credential %s)", ledger.ErrWorkerIDTaken, req.ID, held[0]))
		return
	}
	s.noteJoining(req.ID, req.CommandTypes, time.Now()) // before it can receive a command
	if err := s.addServer(req); err != nil {
		writeErr(w, err)
		return
	}
	_, err := s.commit(r, &ledger.UpsertPeerCommand{
		ID: req.ID, Address: req.HTTPAddr, Roles: []string{api.RoleServer}, State: api.PeerAlive, Now: time.Now().UnixNano(),
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) addServer(req api.JoinRequest) error {
	f := s.store.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return store.MapRaftErr(err)
	}
	voters := 0
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(req.ID) && srv.Address == raft.ServerAddress(req.RaftAddr) {
			return nil // already a member at that address
		}
		if srv.Suffrage == raft.Voter && srv.ID != raft.ServerID(req.ID) {
			voters++
		}
	}
	id, addr := raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr)
	var fut raft.IndexFuture
	if voters < MaxVoters {
		fut = s.store.Raft().AddVoter(id, addr, 0, 10*time.Second)
	} else {
		fut = s.store.Raft().AddNonvoter(id, addr, 0, 10*time.Second)
	}
	if err := fut.Error(); err != nil {
		return store.MapRaftErr(err)
	}
	s.log.Info("server joined", "peer", req.ID, "raft", req.RaftAddr, "voter", voters < MaxVoters)
	return nil
}

// joinLoop brings this server into a group and keeps its HTTP address in
// the ledger: with no Raft state it asks the --join servers; if one of them
// knows a leader it joins through it, and if none does it bootstraps a new
// group once BootstrapExpect servers know each other. Every server that
// reaches the same set bootstraps the same configuration, so the group
// forms exactly once. Then, once a leader exists, it registers itself.
func (s *Server) joinLoop() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.stop; cancel() }()
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		done, err := s.joinStep(ctx)
		if done {
			return
		}
		if err != nil {
			s.log.Debug("joining", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func (s *Server) joinStep(ctx context.Context) (bool, error) {
	if !s.tls.certified() {
		return false, s.getCertified(ctx)
	}
	if s.inGroup() {
		return s.registerSelf(ctx)
	}
	others := s.askJoinServers(ctx)
	for _, o := range others {
		if o.Leader != "" || o.HasState {
			return false, s.requestJoin(ctx, o.HTTPAddr)
		}
	}
	return false, s.maybeBootstrapExpect(others)
}

// getCertified gets this server a certificate of the cluster CA (see
// tls.go): through a server of the CA pinned (joining a running grid),
// through one whose CA carries the proof of the token this server shares
// (forming a group together), or, as the lowest id of a group being formed
// when none has a CA yet, by making the CA.
func (s *Server) getCertified(ctx context.Context) error {
	others := s.askJoinServers(ctx)
	for _, o := range others {
		switch {
		case o.CA == "":
		case !s.cfg.CAPin.IsZero():
			return s.certify(ctx, o.HTTPAddr, s.cfg.CAPin)
		default:
			if ca, ok := s.discoverCA(o); ok {
				return s.certify(ctx, o.HTTPAddr, auth.Pin{CA: ca})
			}
		}
	}
	if s.firstOfGroup(others) || s.firstOfGroupBeforeTLS(others) {
		if err := s.tls.makeCA(s.cfg.Store.ID); err != nil {
			return err
		}
		s.log.Info("made the cluster CA", "servers", s.cfg.BootstrapExpect, "ca_fingerprint", s.tls.authority().Fingerprint())
		return nil
	}
	if !s.cfg.CAPin.IsZero() {
		return fmt.Errorf("waiting for a server of CA %s to answer", s.cfg.CAPin.Fingerprint)
	}
	if s.inGroup() {
		return errors.New("this server's ledger is from before TLS and it has no cluster CA: start every server of its group with --join naming the others (and one --token); once all answer, the lowest id makes the CA")
	}
	return errors.New("waiting for the cluster CA: give --ca-fingerprint to join a running grid, or start the group's servers with one --token")
}

// firstOfGroup: a group of BootstrapExpect is being formed, every one of
// them is known and fresh, and this server has the lowest id.
func (s *Server) firstOfGroup(others []api.ServerInfo) bool {
	if s.cfg.BootstrapExpect < 2 || !s.cfg.CAPin.IsZero() || len(others)+1 < s.cfg.BootstrapExpect {
		return false
	}
	ids := []string{s.cfg.Store.ID}
	for _, o := range others {
		if o.HasState || o.Leader != "" {
			return false
		}
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return ids[0] == s.cfg.Store.ID
}

// firstOfGroupBeforeTLS: this server's ledger is of a group that ran
// before TLS (none of them has a CA), every server of its Raft
// configuration answered, none with a CA, and this one has the lowest id.
// The others take its CA on the shared token's proof, as a new group does.
func (s *Server) firstOfGroupBeforeTLS(others []api.ServerInfo) bool {
	if !s.cfg.CAPin.IsZero() {
		return false
	}
	f := s.store.Raft().GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		return false
	}
	answered := map[string]bool{s.cfg.Store.ID: true}
	for _, o := range others {
		if o.CA != "" {
			return false
		}
		answered[o.ID] = true
	}
	var ids []string
	for _, srv := range f.Configuration().Servers {
		if !answered[string(srv.ID)] {
			return false
		}
		ids = append(ids, string(srv.ID))
	}
	return slices.Min(ids) == s.cfg.Store.ID
}

// aloneInGroup: the store's Raft configuration is empty or only itself.
func aloneInGroup(st *store.Store) bool {
	f := st.Raft().GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	return len(servers) == 0 || len(servers) == 1 && string(servers[0].ID) == st.ID()
}

// registerSelf makes sure the ledger has this server's HTTP address, so
// followers can forward to it when it leads.
func (s *Server) registerSelf(ctx context.Context) (bool, error) {
	_, leader := s.store.Leader()
	if leader == "" || s.cfg.HTTPAddr == "" {
		return s.cfg.HTTPAddr == "", nil
	}
	if s.serverHTTPAddr(s.cfg.Store.ID) == s.cfg.HTTPAddr {
		return true, nil
	}
	if s.store.IsLeader() {
		_, err := s.store.Propose(ctx, &ledger.UpsertPeerCommand{
			ID: s.cfg.Store.ID, Address: s.cfg.HTTPAddr, Roles: []string{api.RoleServer}, State: api.PeerAlive, Now: time.Now().UnixNano(),
		})
		return err == nil, err
	}
	target := s.serverHTTPAddr(leader)
	if target == "" {
		for _, o := range s.askJoinServers(ctx) {
			if o.LeaderHTTP != "" {
				target = o.LeaderHTTP
			}
		}
	}
	if target == "" {
		return false, errors.New("leader's address not known yet")
	}
	return false, s.requestJoin(ctx, target)
}

// client talks to another server, trusting this server's CA.
func (s *Server) client(addr string) *client.Client { return s.pinnedClient(addr, s.tls.pin()) }

// pinnedClient talks to another server, trusting the CA pin names; with
// none, it checks no certificate and so carries no credential (for the
// public self-description only).
func (s *Server) pinnedClient(addr string, pin auth.Pin) *client.Client {
	token := s.cfg.Token
	if pin.IsZero() {
		token = ""
	}
	c := client.New(addr, token)
	c.HTTP.Timeout = 5 * time.Second
	if pin.IsZero() {
		c.Unverified()
	} else {
		c.Pin(pin)
	}
	return c
}

func (s *Server) askJoinServers(ctx context.Context) []api.ServerInfo {
	var out []api.ServerInfo
	pin := s.tls.pin()
	if pin.IsZero() {
		pin = s.cfg.CAPin // not yet certified: the CA given, if any
	}
	for _, addr := range s.cfg.Join {
		info, err := s.pinnedClient(addr, pin).ServerInfo(ctx)
		if err != nil || info.ID == s.cfg.Store.ID {
			continue
		}
		if info.HTTPAddr == "" {
			info.HTTPAddr = addr
		}
		out = append(out, *info)
	}
	return out
}

func (s *Server) requestJoin(ctx context.Context, addr string) error {
	return s.client(addr).Join(ctx, &api.JoinRequest{
		ID: s.cfg.Store.ID, RaftAddr: s.store.RaftAddr(), HTTPAddr: s.cfg.HTTPAddr, CommandTypes: s.commandTypes(),
	})
}

// maybeBootstrapExpect bootstraps when enough fresh servers know each other.
// All of them pick the same BootstrapExpect lowest ids, so they propose one
// identical configuration; a server outside that set joins later.
func (s *Server) maybeBootstrapExpect(others []api.ServerInfo) error {
	if s.cfg.BootstrapExpect < 2 {
		return nil
	}
	known := append([]api.ServerInfo{s.self()}, others...)
	if len(known) < s.cfg.BootstrapExpect {
		return fmt.Errorf("%d of %d servers known", len(known), s.cfg.BootstrapExpect)
	}
	sort.Slice(known, func(a, b int) bool { return known[a].ID < known[b].ID })
	known = known[:s.cfg.BootstrapExpect]
	if !slices.ContainsFunc(known, func(i api.ServerInfo) bool { return i.ID == s.cfg.Store.ID }) {
		return nil
	}
	var cfg raft.Configuration
	for _, k := range known {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(k.ID), Address: raft.ServerAddress(k.RaftAddr), Suffrage: raft.Voter})
	}
	s.log.Info("bootstrapping the Raft group", "servers", len(cfg.Servers))
	err := s.store.Raft().BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

func (s *Server) handleListRaftPeers(w http.ResponseWriter, r *http.Request) {
	f := s.store.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		writeErr(w, store.MapRaftErr(err))
		return
	}
	writeJSON(w, http.StatusOK, s.describeRaftPeers(r.Context(), f.Configuration().Servers))
}

// raftPeers describes every server of the Raft group (nil if the
// configuration cannot be read).
func (s *Server) raftPeers(ctx context.Context) []api.RaftPeer {
	f := s.store.Raft().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return s.describeRaftPeers(ctx, f.Configuration().Servers)
}

// describeRaftPeers asks the servers in parallel, so one unreachable server
// costs one timeout, not one each; sorted by id.
func (s *Server) describeRaftPeers(ctx context.Context, servers []raft.Server) []api.RaftPeer {
	out := make([]api.RaftPeer, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { out[i] = s.describeRaftPeer(ctx, srv) })
	}
	wg.Wait()
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// describeRaftPeer asks each server for its own state and last index; one
// that does not answer is "unreachable".
func (s *Server) describeRaftPeer(ctx context.Context, srv raft.Server) api.RaftPeer {
	p := api.RaftPeer{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter, State: "unreachable"}
	if string(srv.ID) == s.cfg.Store.ID {
		p.State, p.LastIndex = store.StateName(s.store.Raft().State()), s.store.Raft().LastIndex()
		return p
	}
	addr := s.serverHTTPAddr(string(srv.ID))
	if addr == "" {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := s.client(addr).Status(ctx); err == nil {
		p.State, p.LastIndex = st.RaftState, st.LastIndex
	}
	return p
}

func (s *Server) handleRemoveRaftPeer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.store.Raft().RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		writeErr(w, store.MapRaftErr(err))
		return
	}
	if _, err := s.commit(r, &ledger.UpsertPeerCommand{ID: id, State: api.PeerDown, Now: time.Now().UnixNano()}); err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("server removed from the Raft group", "peer", id)
	writeJSON(w, http.StatusOK, struct{}{})
}
