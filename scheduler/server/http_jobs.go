package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

var errNotWasm = errors.New("module is not WebAssembly")

// wasmMagic is the first 8 bytes of every WebAssembly 1.0 binary.
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

func (s *Server) handlePutBlob(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if err := storage.CheckHash(hash); err != nil {
		writeErr(w, err)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, storage.MaxInline+1))
	if err != nil {
		writeErr(w, fmt.Errorf("%w: reading blob: %v", errBadRequest, err))
		return
	}
	if err := storage.CheckInline("blob "+hash, len(data)); err != nil {
		writeErr(w, err)
		return
	}
	if err := storage.Verify(hash, data); err != nil {
		writeErr(w, err)
		return
	}
	pin := r.URL.Query().Get("pin") == "true"
	if s.blobNeedsPut(hash, pin, owner(r)) {
		if _, err := s.commit(r, &ledger.PutBlobCommand{Hash: hash, Data: data, Now: time.Now().UnixNano(), Pin: pin, Owner: owner(r)}); err != nil {
			writeErr(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, api.BlobInfo{Hash: hash, Size: int64(len(data))})
}

// blobNeedsPut reports whether a put changes the ledger: the blob is new,
// or to be pinned, or owner has not put it before.
func (s *Server) blobNeedsPut(hash string, pin bool, owner string) bool {
	var needs bool
	s.store.FSM().View(func(l *ledger.Ledger) {
		meta := l.BlobMeta(hash)
		needs = !l.HasBlob(hash) || pin && !meta.Pinned || !slices.Contains(meta.Owners, owner)
	})
	return needs
}

func (s *Server) hasBlob(hash string) bool {
	var ok bool
	s.store.FSM().View(func(l *ledger.Ledger) { ok = l.HasBlob(hash) })
	return ok
}

func (s *Server) handleGetBlob(w http.ResponseWriter, r *http.Request) {
	if err := s.mayRead(r, r.PathValue("hash")); err != nil {
		writeErr(w, err)
		return
	}
	var data []byte
	var ok, coded bool
	s.store.FSM().View(func(l *ledger.Ledger) {
		data, ok = l.InlineBlob(r.PathValue("hash"))
		coded = l.Manifest(r.PathValue("hash")) != nil
	})
	if !ok && coded && r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK) // the grid has it, erasure-coded
		return
	}
	if !ok && coded {
		writeError(w, http.StatusConflict, fmt.Errorf("blob %s is erasure-coded across storage peers: read its manifest at /v1/blobs/%s/manifest", r.PathValue("hash"), r.PathValue("hash")))
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %s", ledger.ErrBlobMissing, r.PathValue("hash")))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	req, err := decodeSubmit(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.checkModule(req.Spec.ModuleHash); err != nil {
		writeErr(w, err)
		return
	}
	resp, err := s.commit(r, &ledger.SubmitJobCommand{ID: newJobID(), Spec: req.Spec, Now: time.Now().UnixNano(), RequestID: req.RequestID, Owner: owner(r)})
	if err != nil {
		writeErr(w, err)
		return
	}
	id, _ := resp.(string) // a repeated request's answer is the job it created
	s.log.Info("job submitted", "job", id, "name", req.Spec.Name, "tasks", req.Spec.Tasks)
	writeJSON(w, http.StatusCreated, api.SubmitResponse{ID: id})
}

// decodeSubmit reads a submit's body and checks what needs no ledger: the
// spec's bounds (tasks.JobSpec.Validate) and the request id. Quotas are the
// ledger's to check, as the submit applies.
func decodeSubmit(r *http.Request) (*api.SubmitRequest, error) {
	var req api.SubmitRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := req.Spec.Validate(); err != nil {
		return nil, err
	}
	if len(req.RequestID) > maxRequestID {
		return nil, fmt.Errorf("%w: request_id is %d bytes, at most %d", errBadRequest, len(req.RequestID), maxRequestID)
	}
	return &req, nil
}

// maxRequestID bounds a submit's request id.
const maxRequestID = 128

// checkModule refuses a job whose module is missing or is not WebAssembly,
// so a bad file fails at submit rather than on every worker. A module is
// either inline in the ledger, whose header is checked here, or (over the
// inline threshold) erasure-coded with a committed manifest: its bytes are on
// the storage peers and checking them would mean fetching them through the
// server, so it is accepted unchecked. Clients check the header before
// uploading (client.CheckModuleFile), and a worker that fetches a module that
// is not WebAssembly fails the task with invalid_module.
func (s *Server) checkModule(hash string) error {
	var mod []byte
	var inline, coded bool
	s.store.FSM().View(func(l *ledger.Ledger) {
		mod, inline = l.InlineBlob(hash)
		coded = l.Manifest(hash) != nil
	})
	switch {
	case inline && !bytes.HasPrefix(mod, wasmMagic):
		return fmt.Errorf("%w: it starts with %q, not the WebAssembly header \\0asm version 1", errNotWasm, head(mod, 8))
	case !inline && !coded:
		return fmt.Errorf("%w: module %s (upload it first)", ledger.ErrBlobMissing, hash)
	}
	return nil
}

func head(b []byte, n int) []byte { return b[:min(n, len(b))] }

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	var out []api.JobSummary
	p := principalOf(r)
	s.store.FSM().View(func(l *ledger.Ledger) {
		if p.Role == api.CredOperator {
			out = l.JobSummaries()
		} else {
			out = l.JobSummariesOf(p.ID)
		}
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleJobStatus(w http.ResponseWriter, r *http.Request) {
	if err := s.mayTouchJob(r, r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	var st *api.JobStatus
	summaryOnly := r.URL.Query().Get("summary") == "true"
	s.store.FSM().View(func(l *ledger.Ledger) {
		if !summaryOnly {
			st, _ = l.JobStatus(r.PathValue("id"))
		} else if sum, ok := l.JobSummary(r.PathValue("id")); ok {
			st = &api.JobStatus{JobSummary: sum}
		}
	})
	if st == nil {
		writeErr(w, fmt.Errorf("%w: %s", ledger.ErrJobNotFound, r.PathValue("id")))
		return
	}
	if summaryOnly {
		writeJSON(w, http.StatusOK, st.JobSummary)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	if err := s.mayTouchJob(r, r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	id := r.PathValue("id")
	if _, err := s.commit(r, &ledger.PurgeJobCommand{ID: id}); err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("job purged", "job", id)
	writeJSON(w, http.StatusOK, api.SubmitResponse{ID: id})
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	if err := s.mayTouchJob(r, r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	id := r.PathValue("id")
	if _, err := s.commit(r, &ledger.CancelJobCommand{ID: id, Now: time.Now().UnixNano()}); err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("job cancelled", "job", id)
	writeJSON(w, http.StatusOK, api.SubmitResponse{ID: id})
}

// maxResultsPage bounds one results response.
const (
	maxResultsPage  = 1000
	maxResultsBytes = 32 << 20
)

func (s *Server) handleResults(w http.ResponseWriter, r *http.Request) {
	if err := s.mayTouchJob(r, r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	limit, err := queryInt(r, "limit", maxResultsPage)
	if err != nil {
		writeErr(w, err)
		return
	}
	var page *api.ResultsPage
	s.store.FSM().View(func(l *ledger.Ledger) {
		page, _ = l.Results(r.PathValue("id"), offset, min(limit, maxResultsPage), maxResultsBytes)
	})
	if page == nil {
		writeErr(w, fmt.Errorf("%w: %s", ledger.ErrJobNotFound, r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, page)
}
