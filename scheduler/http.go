package scheduler

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
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// ErrUnauthorized is the error for a missing or wrong token.
var ErrUnauthorized = errors.New("missing or wrong cluster token")

// errBadRequest marks a request the client got wrong.
var errBadRequest = errors.New("bad request")

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/blobs/{hash}", s.handlePutBlob)
	mux.HandleFunc("GET /v1/blobs/{hash}", s.handleGetBlob)
	mux.HandleFunc("POST /v1/jobs", s.handleSubmit)
	mux.HandleFunc("GET /v1/jobs", s.handleListJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", s.handleJobStatus)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.handleCancel)
	mux.HandleFunc("GET /v1/jobs/{id}/results", s.handleResults)
	mux.HandleFunc("POST /v1/lease", s.handleLease)
	mux.HandleFunc("POST /v1/report", s.handleReport)
	mux.HandleFunc("POST /v1/release", s.handleRelease)
	mux.HandleFunc("POST /v1/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("GET /v1/peers", s.handlePeers)
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	return s.authenticate(mux)
}

// authenticate refuses any request without the cluster token, before it can
// read or change anything. Tokens are compared in constant time.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(want) > 0 && subtle.ConstantTimeCompare([]byte(requestToken(r)), want) != 1 {
			writeError(w, http.StatusUnauthorized, fmt.Errorf("%w: send it in the %s header (PEERGRID_TOKEN for the CLI)", ErrUnauthorized, api.TokenHeader))
			return
		}
		next.ServeHTTP(w, r)
	})
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
	writeJSON(w, code, api.Error{Error: err.Error()})
}

// writeErr maps an error to its status code.
func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrJobNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrJobFinished), errors.Is(err, ErrJobExists):
		code = http.StatusConflict
	case errors.Is(err, errBadRequest), errors.Is(err, tasks.ErrInvalidSpec), errors.Is(err, ErrBlobMissing),
		errors.Is(err, storage.ErrHashMismatch), errors.Is(err, storage.ErrBadHash), errors.Is(err, errNotWasm):
		code = http.StatusBadRequest
	case errors.Is(err, storage.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		code = http.StatusServiceUnavailable
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

// commit proposes a command and turns a rule-violation response into an error.
func (s *Server) commit(r *http.Request, t CommandType, payload any) (any, error) {
	resp, err := s.store.Propose(r.Context(), t, payload)
	if err != nil {
		return nil, err
	}
	if e, ok := resp.(error); ok {
		return nil, e
	}
	return resp, nil
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
