package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

// handlePutManifest commits an erasure-coded blob's manifest. The shards are
// already on the storage peers: the client (or worker) pushed them there
// directly, so bulk data never passes through the leader.
//
// A committed manifest is write-once (ledger.CommitManifestCommand). The
// blob hash is the SHA-256 of the plaintext, so the server, which has no
// bytes, cannot tell a true manifest from a forged one: the first commit
// wins. After it, a manifest of the same blob is answered by what it is:
//   - the same content, placement and all (a retry): 200, the caller noted
//     as an owner (and the pin);
//   - a repair (?repair=true) of the same content on other peers: committed
//     if the caller holds the leader's repair order for the blob, moves
//     shards only to peers the order names, and each new holder proves by
//     content that it holds its shard (storage.CheckHolder), else 409
//     saying why; shards it leaves on no peer stay with their old holder;
//   - the same content on other peers, or the same size coded with another
//     k, m or segment size, not a repair (the same bytes put again, e.g. a
//     result two replicas stored, or a job's output equal to a blob put
//     with other coding): 200, the committed manifest kept, the caller
//     noted as an owner; its own shards are orphans the peers' sweep
//     removes;
//   - other content (another size, or other shard hashes under the same
//     coding, which the same bytes cannot give): 409 naming the first
//     difference, and nothing changes.
func (s *Server) handlePutManifest(w http.ResponseWriter, r *http.Request) {
	m, err := readManifest(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.checkPinQuota(r, m, r.URL.Query().Get("pin") == "true"); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.commitManifest(r, m); err != nil {
		writeErr(w, err)
		return
	}
	if isRepair(r) { // done, even if it moved nothing (a shard rewritten where it was)
		s.repairs.done(m.Hash)
	}
	writeJSON(w, http.StatusOK, api.BlobInfo{Hash: m.Hash, Size: m.Size})
}

// commitManifest commits m as handlePutManifest says. A first commit that
// loses a race with another one of the same blob (two replicas storing the
// same result) is resolved again against the winner.
func (s *Server) commitManifest(r *http.Request, m *storage.Manifest) error {
	for attempt := 0; ; attempt++ {
		cmd := &ledger.CommitManifestCommand{Manifest: m, Now: time.Now().UnixNano(), Pin: r.URL.Query().Get("pin") == "true", Owner: owner(r)}
		existing := s.manifest(m.Hash)
		switch {
		case existing == nil && isRepair(r): // collected meanwhile: a repair must not bring it back
			return fmt.Errorf("%w: blob %s has no committed manifest to repair", errNoRepairOrder, m.Hash)
		case existing != nil:
			if err := s.resolveManifestChange(r, existing, cmd); err != nil {
				return err
			}
		}
		_, err := s.commit(r, cmd)
		if existing == nil && attempt == 0 && errors.Is(err, ledger.ErrManifestCommitted) {
			continue
		}
		return err
	}
}

// repairProofTimeout bounds the proofs a repair's new holders give.
const repairProofTimeout = 20 * time.Second

// errUnprovenHolder refuses a repair whose new holder did not prove it
// holds the shard it was given (409).
var errUnprovenHolder = fmt.Errorf("%w: a repair's new holder did not prove it holds its shard", ledger.ErrManifestCommitted)

// checkNewHolders has each peer a repair moves a shard to prove, by
// content, that it holds it, as blob stat does: the leader does not take a
// repairer's word that it uploaded the shard, nor the new holder's.
func (s *Server) checkNewHolders(ctx context.Context, m *storage.Manifest, moved []storage.ShardLoc) error {
	addr := map[string]string{}
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, p := range l.StoragePeers(true) {
			addr[p.ID] = p.Address
		}
	})
	ctx, cancel := context.WithTimeout(ctx, repairProofTimeout)
	defer cancel()
	for _, loc := range moved {
		sh := m.Segments[loc.Segment].Shards[loc.Index]
		a, ok := addr[sh.Peer]
		if !ok {
			return fmt.Errorf("%w: blob %s: %s: peer %s is not a live storage peer", errUnprovenHolder, m.Hash, loc, sh.Peer)
		}
		if err := storage.CheckHolder(ctx, s.challengeClient(sh.Peer, a), sh, m.ShardSize(loc.Segment)); err != nil {
			return fmt.Errorf("%w: blob %s: %s on peer %s: %w", errUnprovenHolder, m.Hash, loc, sh.Peer, err)
		}
	}
	return nil
}

// isRepair reports whether a manifest put is a repair's commit
// (?repair=true, client.CommitRepair).
func isRepair(r *http.Request) bool { return r.URL.Query().Get("repair") == "true" }

// keepHolders undoes the moves of m (from existing) that leave a shard on
// no peer: a partial repair drops the old holder of a shard it could not
// place, but a committed shard stays where it is until a repair puts it on
// a new peer (unplacing it would let its holder's sweep delete it). It
// returns the manifest to commit and the moves left.
func keepHolders(existing, m *storage.Manifest, moved []storage.ShardLoc) (*storage.Manifest, []storage.ShardLoc) {
	var left []storage.ShardLoc
	var out *storage.Manifest
	for _, loc := range moved {
		if m.Segments[loc.Segment].Shards[loc.Index].Peer != "" {
			left = append(left, loc)
			continue
		}
		if out == nil {
			out = m.Clone()
		}
		out.Segments[loc.Segment].Shards[loc.Index].Peer = existing.Segments[loc.Segment].Shards[loc.Index].Peer
	}
	if out == nil {
		return m, moved
	}
	return out, left
}

// readManifest decodes and validates the request's manifest for the blob
// the path names.
func readManifest(r *http.Request) (*storage.Manifest, error) {
	hash := r.PathValue("hash")
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading manifest: %v", errBadRequest, err)
	}
	m, err := storage.DecodeManifest(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if m.Hash != hash {
		return nil, fmt.Errorf("%w: manifest is for blob %s, not %s", errBadRequest, m.Hash, hash)
	}
	return m, nil
}

// otherCoding answers a manifest of a stored blob's size coded with
// another k, m or segment size. It proves nothing: anyone who knows a
// blob's hash and size can write one with made-up shard hashes, so it
// must not make the caller an owner (who may read and pin the blob). The
// committed manifest stays. A peer storing a task's result whose bytes are
// a stored blob needs no ownership (the job refers to the blob), so it is
// answered 200 and noted as nothing; anyone else (or one that already
// owns it) is told to put the blob with the committed coding, whose
// shard hashes only the bytes give.
func (s *Server) otherCoding(r *http.Request, existing *storage.Manifest, cmd *ledger.CommitManifestCommand) error {
	cmd.Manifest = existing
	var owns bool
	s.store.FSM().View(func(l *ledger.Ledger) { owns = slices.Contains(l.BlobMeta(existing.Hash).Owners, owner(r)) })
	if owns || principalOf(r).Role == api.CredPeer {
		if !owns {
			cmd.Owner, cmd.Pin = "", false
		}
		return nil
	}
	return fmt.Errorf("%w: blob %s is stored coded with k=%d m=%d in segments of %d bytes; to own it, put it with those (blob put --k %d --m %d): only its bytes give that coding's shard hashes",
		ledger.ErrManifestCommitted, existing.Hash, existing.K, existing.M, existing.SegmentSize, existing.K, existing.M)
}

// resolveManifestChange decides what a manifest for a blob that has one
// commits (see handlePutManifest): it refuses other content, lets the
// holder of a repair order move shards onto the order's targets once the
// new holders prove they hold them, and turns any other move into a note
// of the owner on the committed manifest.
func (s *Server) resolveManifestChange(r *http.Request, existing *storage.Manifest, cmd *ledger.CommitManifestCommand) error {
	if err := storage.SameContent(existing, cmd.Manifest); err != nil {
		if isRepair(r) || !storage.OtherCoding(existing, cmd.Manifest) {
			return fmt.Errorf("%w: %w", ledger.ErrManifestCommitted, err)
		}
		return s.otherCoding(r, existing, cmd)
	}
	if isRepair(r) {
		cmd.Owner, cmd.Pin = "", false // a repairer does not come to own the blob
	}
	moved := storage.Moved(existing, cmd.Manifest)
	if len(moved) == 0 {
		return nil
	}
	if !isRepair(r) {
		cmd.Manifest = existing // the same bytes put again: keep where they are
		return nil
	}
	if err := storage.SameRoots(existing, cmd.Manifest); err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrManifestCommitted, err)
	}
	if cmd.Manifest, moved = keepHolders(existing, cmd.Manifest, moved); len(moved) == 0 {
		return nil
	}
	if err := cmd.Manifest.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if err := s.repairs.authorize(principalOf(r), cmd.Manifest, moved); err != nil {
		return err
	}
	if err := s.checkNewHolders(r.Context(), cmd.Manifest, moved); err != nil {
		return err
	}
	cmd.Moves = moved
	return nil
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
	// An operator takes every pin off; an owner only its own, so one who
	// became an owner by putting the blob's manifest again cannot undo
	// another's pin.
	var cmd ledger.Command = &ledger.UnpinOwnCommand{Hash: hash, Owner: owner(r)}
	if principalOf(r).Role == api.CredOperator {
		cmd = &ledger.UnpinBlobCommand{Hash: hash}
	}
	if _, err := s.commit(r, cmd); err != nil {
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

// deleteShards deletes shards from their peers, each peer's with one
// delete capability naming them: the ledger no longer places them there.
func (s *Server) deleteShards(ctx context.Context, shards []ledger.ShardAt, peers []api.StoragePeer) {
	addr := map[string]string{}
	for _, p := range peers {
		addr[p.ID] = p.Address
	}
	byPeer := map[string][]string{}
	for _, sh := range shards {
		if _, ok := addr[sh.Peer]; ok {
			byPeer[sh.Peer] = append(byPeer[sh.Peer], sh.Hash)
		}
	}
	caps, err := s.signEach(byPeer, auth.Capability{Op: auth.CapDelete, Holder: leaderHolder}, time.Now(), deleteCapTTL)
	if err != nil {
		s.log.Warn("garbage collection: shards left to the peers' sweeps", "err", err)
		return
	}
	conns := map[string]storage.ShardPeer{}
	for id := range byPeer {
		conns[id] = s.shardClient(addr[id])
	}
	conns = client.WithCapabilities(conns, caps) // each delete carries the capability naming its shard
	for id, hashes := range byPeer {
		sc := conns[id].(*storage.ShardClient)
		for _, h := range hashes {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := sc.Delete(dctx, h); err != nil {
				s.log.Debug("delete shard", "peer", id, "shard", h, "err", err)
			}
			cancel()
		}
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
