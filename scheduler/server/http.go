package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// ErrUnauthorized is the error for a missing or wrong token.
var ErrUnauthorized = errors.New("missing or wrong cluster token")

// errBadRequest marks a request the client got wrong.
var errBadRequest = errors.New("bad request")

func (s *Server) newRoutes() http.Handler {
	mux := http.NewServeMux()
	// Writes go to the leader (forwarded from a follower); reads are
	// consistent (served by a verified leader) unless ?stale=true.
	mux.Handle("PUT /v1/blobs/{hash}", s.write(s.handlePutBlob))
	mux.Handle("GET /v1/blobs/{hash}", s.read(s.handleGetBlob))
	mux.Handle("PUT /v1/blobs/{hash}/manifest", s.write(s.handlePutManifest))
	mux.Handle("GET /v1/blobs/{hash}/manifest", s.read(s.handleGetManifest))
	mux.Handle("GET /v1/storage/peers", s.read(s.handleStoragePeers))
	mux.HandleFunc("GET /v1/storage/config", s.handleStorageConfig)
	mux.Handle("POST /v1/storage/shards/placed", consistent(s.read(s.handlePlacedShards)))
	mux.Handle("POST /v1/blobs/{hash}/faults", s.write(s.handleReportFaults))
	mux.Handle("POST /v1/jobs", s.write(s.handleSubmit))
	mux.Handle("GET /v1/jobs", s.read(s.handleListJobs))
	mux.Handle("GET /v1/jobs/{id}", s.read(s.handleJobStatus))
	mux.Handle("POST /v1/jobs/{id}/cancel", s.write(s.handleCancel))
	mux.Handle("POST /v1/jobs/{id}/purge", s.write(s.handlePurge))
	mux.Handle("DELETE /v1/blobs/{hash}/pin", s.write(s.handleUnpin))
	mux.Handle("GET /v1/jobs/{id}/results", s.read(s.handleResults))
	mux.Handle("POST /v1/lease", s.write(s.handleLease))
	mux.Handle("POST /v1/report", s.write(s.handleReport))
	mux.Handle("POST /v1/release", s.write(s.handleRelease))
	mux.Handle("POST /v1/heartbeat", s.write(s.handleHeartbeat))
	mux.Handle("GET /v1/peers", s.read(s.handlePeers))
	mux.Handle("POST /v1/cluster/join", s.write(s.handleJoin))
	mux.Handle("GET /v1/operator/raft/peers", s.read(s.handleListRaftPeers))
	mux.Handle("DELETE /v1/operator/raft/peers/{id}", s.write(s.handleRemoveRaftPeer))
	// Answered by the server asked, never forwarded.
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("GET /v1/cluster/self", s.handleSelf)
	mux.Handle("GET /metrics", s.metricsHandler()) // Prometheus; this server's own view (metrics.go)
	// The web dashboard (dashboard.go) authenticates itself: a header or its
	// login cookie, and a redirect to its login form rather than a 401. The
	// cookie is honoured under /ui only; everything else, /v1/ and /metrics
	// included, still goes through authenticate, which reads headers only.
	apiHandler, ui := s.authenticate(mux), views.NewDashboard(viewSource{s})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if views.IsDashboardPath(r.URL.Path) {
			ui.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// authenticate refuses any request without the cluster token, before it can
// read or change anything.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokenValid(requestToken(r)) {
			writeError(w, http.StatusUnauthorized, fmt.Errorf("%w: send it in the %s header (PEERGRID_TOKEN for the CLI)", ErrUnauthorized, api.TokenHeader))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenValid reports whether token is the cluster token, compared in
// constant time. With no token configured (tests only) every token is.
func (s *Server) tokenValid(token string) bool {
	want := s.cfg.Token
	return want == "" || token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

// shardClient is a client for the storage peer at addr.
func (s *Server) shardClient(addr string) *storage.ShardClient {
	return storage.NewShardClient(addr, s.cfg.Token, nil)
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
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ledger.ErrJobNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ledger.ErrJobFinished), errors.Is(err, ledger.ErrJobExists), errors.Is(err, ledger.ErrRequestReused):
		code = http.StatusConflict
	case errors.Is(err, errBadRequest), errors.Is(err, tasks.ErrInvalidSpec), errors.Is(err, ledger.ErrBlobMissing),
		errors.Is(err, storage.ErrHashMismatch), errors.Is(err, ledger.ErrJobNotFinished), errors.Is(err, storage.ErrBadHash), errors.Is(err, errNotWasm):
		code = http.StatusBadRequest
	case errors.Is(err, storage.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrNoLeader):
		code = http.StatusServiceUnavailable
		if errors.Is(err, store.ErrNotProposed) {
			w.Header().Set(api.RetryHeader, "safe")
		}
	}
	writeError(w, code, err)
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
