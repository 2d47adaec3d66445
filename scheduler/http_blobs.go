package scheduler

import (
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// handlePutManifest commits an erasure-coded blob's manifest. The shards are
// already on the storage peers: the client (or worker) pushed them there
// directly, so bulk data never passes through the leader.
func (s *Server) handlePutManifest(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		writeErr(w, fmt.Errorf("%w: reading manifest: %v", errBadRequest, err))
		return
	}
	m, err := storage.DecodeManifest(body)
	if err != nil {
		writeErr(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	if m.Hash != hash {
		writeErr(w, fmt.Errorf("%w: manifest is for blob %s, not %s", errBadRequest, m.Hash, hash))
		return
	}
	if _, err := s.commit(r, cmdPutManifest, &PutManifestCommand{Manifest: m}); err != nil {
		writeErr(w, err)
		return
	}
	s.repairs.done(hash)
	writeJSON(w, http.StatusOK, api.BlobInfo{Hash: hash, Size: m.Size})
}

func (s *Server) handleStorageConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.StorageConfig{K: s.cfg.StorageK, M: s.cfg.StorageM, InlineThreshold: storage.DefaultInlineThreshold})
}

func (s *Server) handleGetManifest(w http.ResponseWriter, r *http.Request) {
	var m *storage.Manifest
	s.store.FSM().View(func(l *Ledger) { m = l.manifests[r.PathValue("hash")] })
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: no manifest for %s (an inline blob, or none)", ErrBlobMissing, r.PathValue("hash")))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// handleStoragePeers lists the live storage peers, for writers to place
// shards on and readers to fetch them from.
func (s *Server) handleStoragePeers(w http.ResponseWriter, r *http.Request) {
	out := []api.StoragePeer{}
	all := r.URL.Query().Get("all") == "true"
	s.store.FSM().View(func(l *Ledger) { out = l.storagePeers(!all) })
	writeJSON(w, http.StatusOK, out)
}

// storagePeers lists storage peers with their addresses, sorted by id;
// liveOnly drops the ones marked down.
func (l *Ledger) storagePeers(liveOnly bool) []api.StoragePeer {
	out := []api.StoragePeer{}
	for _, id := range sortedKeys(l.peers) {
		p := l.peers[id]
		if !slices.Contains(p.Roles, api.RoleStorage) || p.Address == "" || liveOnly && p.State == api.PeerDown {
			continue
		}
		out = append(out, api.StoragePeer{ID: p.ID, Address: p.Address})
	}
	return out
}
