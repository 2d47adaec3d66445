package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// errBadRequest marks a request the client got wrong.
var errBadRequest = errors.New("bad request")

// route is one API route: who may call it and how it is served. The table
// is the role matrix the README documents and TestRoutes_RoleMatrix checks.
type route struct {
	pattern string
	roles   []string
	handler http.Handler
}

// routes lists every API route. Writes go to the leader (forwarded from a
// follower); reads are consistent (served by a verified leader) unless
// ?stale=true. A handler checks, beyond the role, what the caller may
// touch: a submitter its own jobs and blobs, a peer its own worker id.
func (s *Server) routes() []route {
	return []route{
		{"PUT /v1/blobs/{hash}", anyUser, s.write(s.handlePutBlob)},
		{"GET /v1/blobs/{hash}", anyUser, s.read(s.handleGetBlob)},
		{"PUT /v1/blobs/{hash}/manifest", anyUser, s.write(s.handlePutManifest)},
		{"GET /v1/blobs/{hash}/manifest", anyUser, s.read(s.handleGetManifest)},
		{"POST /v1/blobs/{hash}/faults", anyUser, s.write(s.handleReportFaults)},
		{"DELETE /v1/blobs/{hash}/pin", operatorOrSub, s.write(s.handleUnpin)},
		{"GET /v1/storage/peers", anyUser, s.read(s.handleStoragePeers)},
		{"GET /v1/storage/config", anyUser, http.HandlerFunc(s.handleStorageConfig)},
		{"POST /v1/storage/shards/placed", workers, consistent(s.read(s.handlePlacedShards))},
		{"POST /v1/storage/capabilities", anyUser, consistent(s.read(s.handleCapabilities))},
		{"POST /v1/jobs", operatorOrSub, s.write(s.handleSubmit)},
		{"GET /v1/jobs", operatorOrSub, s.read(s.handleListJobs)},
		{"GET /v1/jobs/{id}", operatorOrSub, s.read(s.handleJobStatus)},
		{"GET /v1/jobs/{id}/results", operatorOrSub, s.read(s.handleResults)},
		{"POST /v1/jobs/{id}/cancel", operatorOrSub, s.write(s.handleCancel)},
		{"POST /v1/jobs/{id}/purge", operatorOrSub, s.write(s.handlePurge)},
		{"POST /v1/lease", workers, s.write(s.handleLease)},
		{"POST /v1/report", workers, s.write(s.handleReport)},
		{"POST /v1/release", workers, s.write(s.handleRelease)},
		{"POST /v1/heartbeat", workers, s.write(s.handleHeartbeat)},
		{"GET " + stream.Path, workers, http.HandlerFunc(s.handleStream)}, // the leader's only (stream.go)
		{"POST /v1/join", joiners, s.write(s.handleWorkerJoin)},
		{"GET /v1/peers", operatorOrSub, s.read(s.handlePeers)},
		{"POST /v1/peers/{id}/revoke", onlyOperator, s.write(s.handleRevokePeer)},
		{"POST /v1/peers/{id}/trust", onlyOperator, s.write(s.handleTrustPeer)},
		{"POST /v1/acl/tokens", onlyOperator, s.write(s.handleCreateToken)},
		{"GET /v1/acl/tokens", onlyOperator, s.read(s.handleListTokens)},
		{"DELETE /v1/acl/tokens/{id}", onlyOperator, s.write(s.handleRevokeToken)},
		{"POST /v1/cluster/join", onlyOperator, s.write(s.handleJoin)},
		{"POST /v1/cluster/certify", onlyOperator, http.HandlerFunc(s.handleCertify)},
		{"GET /v1/operator/raft/peers", onlyOperator, s.read(s.handleListRaftPeers)},
		{"DELETE /v1/operator/raft/peers/{id}", onlyOperator, s.write(s.handleRemoveRaftPeer)},
		// Answered by the server asked, never forwarded.
		{"GET /v1/status", everyRole, http.HandlerFunc(s.handleStatus)},
		{"GET /v1/cluster/self", anyone, http.HandlerFunc(s.handleSelf)},
		{"GET /metrics", onlyOperator, s.metricsHandler()}, // Prometheus; this server's own view (metrics.go)
	}
}

func (s *Server) newRoutes() http.Handler {
	mux := http.NewServeMux()
	public := http.NewServeMux() // routes anyone may call, without a credential
	for _, rt := range s.routes() {
		if slices.Equal(rt.roles, anyone) {
			public.Handle(rt.pattern, rt.handler)
			continue
		}
		mux.Handle(rt.pattern, allow(rt.roles, rt.handler))
	}
	// The web dashboard (views) authenticates itself: a header or its login
	// cookie, and a redirect to its login form rather than a 401. The cookie
	// is honoured under /ui only; everything else, /v1/ and /metrics
	// included, still goes through authenticate, which reads headers only.
	apiHandler, ui := s.authenticate(mux), views.NewDashboard(viewSource{s})
	s.dashboard = ui
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := public.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		if _, err := s.certPeer(r); err != nil { // another grid's certificate: refused everywhere
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		if views.IsDashboardPath(r.URL.Path) {
			ui.ServeHTTP(w, r)
			return
		}
		if browserAtRoot(r) { // a person who opened the API address: the dashboard, not a JSON 401
			http.Redirect(w, r, "/ui/", http.StatusFound)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// browserAtRoot tells a browser opening the server's bare address (GET /,
// asking for HTML) from an API client.
func browserAtRoot(r *http.Request) bool {
	return r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// shardClient is a client for the storage peer at addr. It presents this
// server's certificate (which lets it read and ask about shards) and sends
// no token: a peer obeys writes and deletes only on a capability.
func (s *Server) shardClient(addr string) *storage.ShardClient {
	return storage.NewShardClient(addr, "", s.shardHTTP)
}

func requestToken(r *http.Request) string {
	if t := r.Header.Get(api.TokenHeader); t != "" {
		return t
	}
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set(api.ErrorHeader, headerSafe(err.Error()))
	writeJSON(w, code, api.Error{Error: err.Error()})
}

// headerSafe is s on one line of printable ASCII, at most 1 KiB: fit for a
// header value.
func headerSafe(s string) string {
	b := make([]byte, 0, min(len(s), 1024))
	for i := 0; i < len(s) && len(b) < 1024; i++ {
		switch c := s[i]; {
		case c == '\n' || c == '\r' || c == '\t':
			b = append(b, ' ')
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
		}
	}
	return string(b)
}

// writeErr maps an error to its status code.
func writeErr(w http.ResponseWriter, err error) {
	code, retrySafe := statusOf(err)
	if retrySafe {
		w.Header().Set(api.RetryHeader, "safe")
	}
	writeError(w, code, err)
}

// statusOf is the HTTP status of an error, and whether it says nothing
// was applied (a 503 the client may send elsewhere).
func statusOf(err error) (code int, retrySafe bool) {
	code = http.StatusInternalServerError
	switch {
	case errors.Is(err, ledger.ErrJobNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrUnauthorized):
		code = http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, ledger.ErrNotOwner), errors.Is(err, ledger.ErrDistrusted):
		code = http.StatusForbidden
	case errors.Is(err, ledger.ErrNoCredential), errors.Is(err, errNotFound), errors.Is(err, ledger.ErrUnknownWorker):
		code = http.StatusNotFound
	case errors.Is(err, ledger.ErrJobFinished), errors.Is(err, ledger.ErrJobExists), errors.Is(err, ledger.ErrRequestReused),
		errors.Is(err, ledger.ErrWorkerIDTaken), errors.Is(err, ledger.ErrJoinRefused), errors.Is(err, ledger.ErrCredentialExists),
		errors.Is(err, ledger.ErrManifestCommitted):
		code = http.StatusConflict
	case errors.Is(err, errBadRequest), errors.Is(err, tasks.ErrInvalidSpec), errors.Is(err, ledger.ErrBlobMissing),
		errors.Is(err, storage.ErrHashMismatch), errors.Is(err, ledger.ErrJobNotFinished), errors.Is(err, storage.ErrBadHash), errors.Is(err, errNotWasm):
		code = http.StatusBadRequest
	case errors.Is(err, storage.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ledger.ErrQuotaExceeded):
		code = http.StatusTooManyRequests
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrNoLeader):
		code = http.StatusServiceUnavailable
		retrySafe = errors.Is(err, store.ErrNotProposed)
	}
	return code, retrySafe
}

// readJSON decodes a request body, refusing unknown fields and trailing data.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 2*storage.MaxInline))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return nil
}

// commit proposes a command for a request; a broken ledger rule is the error.
func (s *Server) commit(r *http.Request, c ledger.Command) (any, error) {
	return s.store.Propose(r.Context(), c)
}

func queryInt(r *http.Request, key string, def int) (int, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q is not a non-negative integer", errBadRequest, key, v)
	}
	return n, nil
}
