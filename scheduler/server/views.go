package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/storage"
)

// viewSource is what the dashboard reads of this server.
type viewSource struct{ s *Server }

var _ views.Source = viewSource{}

func (v viewSource) Store() *store.Store                          { return v.s.store }
func (v viewSource) Peers() []api.Peer                            { return v.s.peerList() }
func (v viewSource) RaftPeers(ctx context.Context) []api.RaftPeer { return v.s.raftPeers(ctx) }
func (v viewSource) StorageDefaults() (k, m int)                  { return v.s.cfg.StorageK, v.s.cfg.StorageM }
func (v viewSource) ShardPeer(addr string) storage.ShardPeer      { return v.s.shardClient(addr) }
func (v viewSource) Logger() *slog.Logger                         { return v.s.log }
func (v viewSource) Viewer(r *http.Request) (views.Viewer, bool)  { return v.ViewerOf(requestToken(r)) }

// ReportedRunning is what worker id's last heartbeat said it ran: known
// only while this server leads (heartbeats go to the leader; a former
// leader's figures are stale).
func (v viewSource) ReportedRunning(id string) (int, bool) { return v.s.reportedRunning(id) }

// reportedRunning is what worker id's last heartbeat to this server said
// it ran, while this server leads (heartbeats go to the leader; a former
// leader's figures are stale).
func (s *Server) reportedRunning(id string) (int, bool) {
	if !s.store.IsLeader() {
		return 0, false
	}
	return s.liveness.reported(id)
}

// ViewerOf is who a token is; with authentication disabled (tests), an
// operator.
func (v viewSource) ViewerOf(token string) (views.Viewer, bool) {
	if v.s.cfg.Token == "" && !v.s.credentialsInUse() {
		return views.Viewer{ID: "anonymous", Role: api.CredOperator}, true
	}
	p, err := v.s.resolve(token)
	if err != nil {
		return views.Viewer{}, false
	}
	return views.Viewer{ID: p.ID, Role: p.Role}, true
}

// LiveCredential is the credential id names, if it is still live: what a
// dashboard session checks on every request, so revoking a credential ends
// its sessions. The cluster token counts before the first leader has
// registered it, as resolve honours it.
func (v viewSource) LiveCredential(id string) (views.Viewer, bool) {
	if v.s.cfg.Token == "" && !v.s.credentialsInUse() {
		return views.Viewer{ID: "anonymous", Role: api.CredOperator}, id == "anonymous"
	}
	var cr ledger.Credential
	var found, hasOperator bool
	v.s.store.FSM().View(func(l *ledger.Ledger) {
		cr, found = l.Credential(id)
		hasOperator = l.HasOperator()
	})
	if !found {
		ok := id == clusterCredentialID && !hasOperator && v.s.cfg.Token != ""
		return views.Viewer{ID: id, Role: api.CredOperator}, ok
	}
	if cr.Valid(time.Now().UnixNano()) != nil {
		return views.Viewer{}, false
	}
	return views.Viewer{ID: cr.ID, Role: cr.Role}, true
}
