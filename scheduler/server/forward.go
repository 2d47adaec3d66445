package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
)

// write serves a request on the leader; a follower forwards it there.
func (s *Server) write(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.store.IsLeader() && s.awaitReady(r.Context()) {
			h(w, r)
			return
		}
		s.forward(w, r)
	})
}

// read serves a consistent read: on a leader that has just confirmed it still
// leads (so it cannot serve state a newer leader has overtaken), else on the
// leader through forwarding. ?stale=true answers from local state at once,
// as Consul and Nomad do.
func (s *Server) read(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stale") == "true" {
			h(w, r)
			return
		}
		if s.store.IsLeader() && s.awaitReady(r.Context()) && s.store.Raft().VerifyLeader().Error() == nil {
			h(w, r)
			return
		}
		s.forward(w, r)
	})
}

// forward proxies a request to the leader's HTTP API. Without a leader it
// waits a bounded time for one, then answers 503 "no cluster leader".
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(api.ForwardedHeader) != "" { // leadership moved while it travelled
		writeErr(w, fmt.Errorf("%w: %w: leadership changed", store.ErrNotLeader, store.ErrNotProposed))
		return
	}
	target, err := s.leaderHTTP(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	u, err := url.Parse(target)
	if err != nil {
		writeErr(w, fmt.Errorf("leader address %q: %w", target, err))
		return
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		writeErr(w, fmt.Errorf("%w: forwarding to the leader at %s: %v", store.ErrNoLeader, target, err))
	}
	r.Header.Set(api.ForwardedHeader, s.cfg.Store.ID)
	proxy.ServeHTTP(w, r)
}

// leaderHTTP finds the leader's HTTP address from the ledger's server peers,
// waiting up to LeaderWait for a leader to be elected.
func (s *Server) leaderHTTP(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := s.store.Leader(); id != "" && id != s.cfg.Store.ID {
			if addr := s.serverHTTPAddr(id); addr != "" {
				return addr, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (waited %s): %w", store.ErrNoLeader, s.cfg.LeaderWait, store.ErrNotProposed)
		case <-t.C:
		}
	}
}

func (s *Server) serverHTTPAddr(id string) string {
	var addr string
	s.store.FSM().View(func(l *ledger.Ledger) {
		if p, ok := l.Peer(id); ok {
			addr = p.Address
		}
	})
	return addr
}
