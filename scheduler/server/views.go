package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/peergrid/peergrid/api"
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
func (v viewSource) Authorized(r *http.Request) bool              { return v.s.tokenValid(requestToken(r)) }
func (v viewSource) TokenValid(token string) bool                 { return v.s.tokenValid(token) }
func (v viewSource) Logger() *slog.Logger                         { return v.s.log }
