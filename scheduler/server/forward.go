package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
)

// write serves a request on the leader; a follower forwards it there.
func (s *Server) write(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveOrForward(w, r, h, func() bool { return s.store.IsLeader() && s.awaitReady(r.Context()) })
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
		s.serveOrForward(w, r, h, func() bool {
			return s.store.IsLeader() && s.awaitReady(r.Context()) && s.store.Raft().VerifyLeader().Error() == nil
		})
	})
}

// serveOrForward serves r here while leads says this server may, else
// forwards it to the leader. It never waits on a leader that is gone: a
// forwarded request is cancelled as soon as this server sees the leader
// change (a leader cut off by a partition that drops packets would
// otherwise hold it until TCP gave up), idle connections to the old leader
// are dropped, and a read starts over: served here if this server is the
// new leader, else forwarded to it. A write does not start over: whether
// the old leader applied it is unknown, so the client, which knows whether
// it is safe to repeat, decides. Without a leader it waits a bounded time
// (LeaderWait) for one, then answers 503 "no cluster leader".
func (s *Server) serveOrForward(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, leads func() bool) {
	if leads() {
		h(w, r)
		return
	}
	if r.Header.Get(api.ForwardedHeader) != "" { // leadership moved while it travelled
		writeErr(w, fmt.Errorf("%w: %w: leadership changed", store.ErrNotLeader, store.ErrNotProposed))
		return
	}
	r.Header.Set(api.ForwardedHeader, s.cfg.Store.ID)
	repeatable := (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.ContentLength <= 0
	deadline := time.Now().Add(s.cfg.LeaderWait)
	for {
		err := s.forwardOnce(w, r)
		if err == nil {
			return
		}
		again := errors.Is(err, errBecameLeader) || repeatable && errors.Is(err, errLeaderChanged)
		if !again || time.Now().After(deadline) || r.Context().Err() != nil {
			writeErr(w, err)
			return
		}
		if leads() {
			r.Header.Del(api.ForwardedHeader)
			h(w, r)
			return
		}
	}
}

// errBecameLeader: while a request waited for a leader, this server became it.
var errBecameLeader = fmt.Errorf("%w: this server became the leader", store.ErrNoLeader)

// errLeaderChanged marks a forward cut short because the leader changed.
var errLeaderChanged = errors.New("the leader changed while the request was forwarded")

// forwardOnce proxies r to the leader this server knows now. It returns
// an error, having written nothing, when the leader cannot be found or the
// forward fails before an answer starts.
func (s *Server) forwardOnce(w http.ResponseWriter, r *http.Request) error {
	changed := s.store.LeaderChanged() // before the leader is read: no change is missed
	target, leaderID, err := s.leaderHTTP(r.Context())
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("leader address %q: %w", target, err)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var moved atomic.Bool
	go s.cancelOnLeaderChange(ctx, changed, leaderID, func() { moved.Store(true); cancel() })
	var failed error
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			markForwarded(pr.Out, principalOf(r))
		},
		Transport:     s.forwarder,
		FlushInterval: -1,
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {
			if moved.Load() {
				err = errLeaderChanged
			}
			failed = fmt.Errorf("%w: forwarding to the leader %s at %s: %w", store.ErrNoLeader, leaderID, target, err)
		},
	}
	proxy.ServeHTTP(w, r.WithContext(ctx))
	return failed
}

// cancelOnLeaderChange calls stop when the leader is no longer leaderID,
// and drops the idle connections to it, until ctx ends.
func (s *Server) cancelOnLeaderChange(ctx context.Context, changed <-chan struct{}, leaderID string, stop func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = s.store.LeaderChanged()
			if _, id := s.store.Leader(); id != leaderID {
				s.forwarder.CloseIdleConnections()
				stop()
				return
			}
		}
	}
}

// leaderHTTP finds the leader's HTTP address from the ledger's server peers,
// waiting up to LeaderWait for a leader to be elected.
func (s *Server) leaderHTTP(ctx context.Context) (addr, id string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		switch _, id := s.store.Leader(); {
		case id == s.cfg.Store.ID:
			return "", "", errBecameLeader
		case id != "":
			if addr := s.serverHTTPAddr(id); addr != "" {
				return addr, id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("%w (waited %s): %w", store.ErrNoLeader, s.cfg.LeaderWait, store.ErrNotProposed)
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
