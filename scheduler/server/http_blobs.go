package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
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
	pin := r.URL.Query().Get("pin") == "true"
	if existing := s.manifest(hash); existing != nil && principalOf(r).Role == api.CredSubmitter {
		m = existing // a submitter adds itself as an owner; only repair moves shards
	}
	if err := s.checkPinQuota(r, m, pin); err != nil {
		writeErr(w, err)
		return
	}
	if _, err := s.commit(r, &ledger.PutManifestCommand{Manifest: m, Now: time.Now().UnixNano(), Pin: pin, Owner: owner(r)}); err != nil {
		writeErr(w, err)
		return
	}
	s.repairs.done(hash)
	writeJSON(w, http.StatusOK, api.BlobInfo{Hash: hash, Size: m.Size})
}

func (s *Server) manifest(hash string) *storage.Manifest {
	var m *storage.Manifest
	s.store.FSM().View(func(l *ledger.Ledger) { m = l.Manifest(hash) })
	return m
}

func (s *Server) handleUnpin(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if p := principalOf(r); p.Role != api.CredOperator {
		var owns bool
		s.store.FSM().View(func(l *ledger.Ledger) { owns = slices.Contains(l.BlobMeta(hash).Owners, p.ID) })
		if !owns {
			writeErr(w, fmt.Errorf("%w: no blob %s of yours (a submitter unpins only blobs it put)", errNotFound, hash))
			return
		}
	}
	if _, err := s.commit(r, &ledger.UnpinBlobCommand{Hash: hash}); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// collectGarbage deletes blobs no job uses (not pinned, older than the grace)
// from the ledger, then the shards only they used from the storage peers.
// Shards are content-addressed and may be shared, so a shard a remaining
// manifest places on the same peer is kept. Deleting from a peer that is
// down is left undone: the peer's own sweep removes the orphan later.
func (s *Server) collectGarbage(ctx context.Context, now time.Time) {
	var candidates []string
	s.store.FSM().View(func(l *ledger.Ledger) { candidates = l.Garbage(now.Add(-s.cfg.GCGrace).UnixNano()) })
	if len(candidates) == 0 {
		return
	}
	doomed := map[string]*storage.Manifest{}
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, h := range candidates {
			if m := l.Manifest(h); m != nil {
				doomed[h] = m
			}
		}
	})
	resp, err := s.store.Propose(ctx, &ledger.DeleteBlobsCommand{Hashes: candidates})
	deleted, _ := resp.([]string)
	if err != nil || len(deleted) == 0 {
		return
	}
	s.log.Info("garbage-collected blobs", "count", len(deleted))
	s.metrics.blobsCollected.Add(float64(len(deleted))) // metrics
	var shards []ledger.ShardAt
	var peers []api.StoragePeer
	s.store.FSM().View(func(l *ledger.Ledger) {
		shards = l.UnusedShards(deleted, doomed)
		peers = l.StoragePeers(true)
	})
	s.deleteShards(ctx, shards, peers)
}

func (s *Server) deleteShards(ctx context.Context, shards []ledger.ShardAt, peers []api.StoragePeer) {
	addr := map[string]string{}
	for _, p := range peers {
		addr[p.ID] = p.Address
	}
	for _, sh := range shards {
		a, ok := addr[sh.Peer]
		if !ok {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.shardClient(a).Delete(dctx, sh.Hash); err != nil {
			s.log.Debug("delete shard", "peer", sh.Peer, "shard", sh.Hash, "err", err)
		}
		cancel()
	}
}

func (s *Server) handleStorageConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.StorageConfig{K: s.cfg.StorageK, M: s.cfg.StorageM, InlineThreshold: s.cfg.InlineThreshold})
}

func (s *Server) handleGetManifest(w http.ResponseWriter, r *http.Request) {
	if err := s.mayRead(r, r.PathValue("hash")); err != nil {
		writeErr(w, err)
		return
	}
	var m *storage.Manifest
	s.store.FSM().View(func(l *ledger.Ledger) { m = l.Manifest(r.PathValue("hash")) })
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: no manifest for %s (an inline blob, or none)", ledger.ErrBlobMissing, r.PathValue("hash")))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// handleStoragePeers lists the live storage peers, for writers to place
// shards on and readers to fetch them from.
func (s *Server) handleStoragePeers(w http.ResponseWriter, r *http.Request) {
	out := []api.StoragePeer{}
	all := r.URL.Query().Get("all") == "true"
	s.store.FSM().View(func(l *ledger.Ledger) { out = l.StoragePeers(!all) })
	writeJSON(w, http.StatusOK, out)
}

// maxPlacedQuery bounds the shards one placed-shards request may ask about.
const maxPlacedQuery = 10000

// handlePlacedShards tells a storage peer which of the shards it holds are
// still placed on it by some manifest; it deletes the rest (older than its
// grace) as orphans. It is a consistent read even with ?stale=true (see
// routes): a lagging follower could miss a manifest committed a moment ago
// and make a peer delete a shard a blob needs.
func (s *Server) handlePlacedShards(w http.ResponseWriter, r *http.Request) {
	var req api.PlacedShardsRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	var err error
	if req.Peer, err = speaksFor(r, req.Peer); err != nil {
		writeErr(w, err)
		return
	}
	if len(req.Shards) > maxPlacedQuery {
		writeErr(w, fmt.Errorf("%w: placed shards needs a peer id and at most %d shards", errBadRequest, maxPlacedQuery))
		return
	}
	out := api.PlacedShardsResponse{Placed: []string{}}
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, h := range req.Shards {
			if l.PlacedOn(h, req.Peer) {
				out.Placed = append(out.Placed, h)
			}
		}
	})
	writeJSON(w, http.StatusOK, out)
}

// consistent drops ?stale=true, so s.read serves the request on a verified
// leader or forwards it there.
func consistent(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("stale") {
			q.Del("stale")
			r.URL.RawQuery = q.Encode()
		}
		h.ServeHTTP(w, r)
	})
}
