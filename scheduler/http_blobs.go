package scheduler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

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
	pin := r.URL.Query().Get("pin") == "true"
	if _, err := s.commit(r, cmdPutManifest, &PutManifestCommand{Manifest: m, Now: time.Now().UnixNano(), Pin: pin}); err != nil {
		writeErr(w, err)
		return
	}
	s.repairs.done(hash)
	writeJSON(w, http.StatusOK, api.BlobInfo{Hash: hash, Size: m.Size})
}

func (s *Server) handleUnpin(w http.ResponseWriter, r *http.Request) {
	if _, err := s.commit(r, cmdUnpinBlob, &UnpinBlobCommand{Hash: r.PathValue("hash")}); err != nil {
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
	s.store.FSM().View(func(l *Ledger) { candidates = l.garbage(now.Add(-s.cfg.GCGrace).UnixNano()) })
	if len(candidates) == 0 {
		return
	}
	doomed := map[string]*storage.Manifest{}
	s.store.FSM().View(func(l *Ledger) {
		for _, h := range candidates {
			if m := l.manifests[h]; m != nil {
				doomed[h] = m
			}
		}
	})
	resp, err := s.store.Propose(ctx, cmdDeleteBlobs, &DeleteBlobsCommand{Hashes: candidates})
	deleted, _ := resp.([]string)
	if err != nil || len(deleted) == 0 {
		return
	}
	s.log.Info("garbage-collected blobs", "count", len(deleted))
	s.counters.blobsCollected.Add(uint64(len(deleted))) // metrics
	var shards []shardAt
	var peers []api.StoragePeer
	s.store.FSM().View(func(l *Ledger) {
		shards = l.unusedShards(deleted, doomed)
		peers = l.storagePeers(true)
	})
	s.deleteShards(ctx, shards, peers)
}

// shardAt is one shard on one peer.
type shardAt struct{ hash, peer string }

// unusedShards are the shards of the deleted manifests that no remaining
// manifest places on the same peer (see shardIndex).
func (l *Ledger) unusedShards(deleted []string, doomed map[string]*storage.Manifest) []shardAt {
	var out []shardAt
	seen := map[shardAt]bool{}
	for _, h := range deleted {
		m := doomed[h]
		if m == nil {
			continue
		}
		for _, seg := range m.Segments {
			for _, sh := range seg.Shards {
				at := shardAt{sh.Hash, sh.Peer}
				if sh.Peer != "" && !seen[at] && !l.placed.placedOn(sh.Hash, sh.Peer) {
					seen[at] = true
					out = append(out, at)
				}
			}
		}
	}
	return out
}

func (s *Server) deleteShards(ctx context.Context, shards []shardAt, peers []api.StoragePeer) {
	addr := map[string]string{}
	for _, p := range peers {
		addr[p.ID] = p.Address
	}
	for _, sh := range shards {
		a, ok := addr[sh.peer]
		if !ok {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := storage.NewShardClient(a, s.cfg.Token, nil).Delete(dctx, sh.hash); err != nil {
			s.log.Debug("delete shard", "peer", sh.peer, "shard", sh.hash, "err", err)
		}
		cancel()
	}
}

func (s *Server) handleStorageConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.StorageConfig{K: s.cfg.StorageK, M: s.cfg.StorageM, InlineThreshold: s.cfg.InlineThreshold})
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
		if !slices.Contains(p.Roles, api.RoleStorage) || p.shardAddress() == "" || liveOnly && p.State == api.PeerDown {
			continue
		}
		out = append(out, api.StoragePeer{ID: p.ID, Address: p.shardAddress()})
	}
	return out
}
