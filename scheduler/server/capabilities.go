package server

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

// Storage peers obey shard writes and deletes, and reads by callers with no
// certificate of the grid, only on a capability a server signed (see
// auth.Capability). The leader grants them here:
//
//   - put, to a caller that may put blobs (operator, submitter, peer), one
//     for each live storage peer: the peers the server places the blob's
//     shards on (the uploader codes and rotates among them);
//   - get, to a caller that may read the blob, one for each peer holding
//     its shards, naming those shards;
//   - in repair orders: put for each target and get for each holder, naming
//     the shards of the segments being repaired;
//   - delete, only to itself, when garbage collection finds shards no
//     manifest places on a peer any more (collectGarbage).
const (
	putCapTTL    = 10 * time.Minute
	getCapTTL    = 10 * time.Minute
	deleteCapTTL = time.Minute
)

// leaderHolder names the leader's own orders in a capability.
const leaderHolder = "leader"

// signCap signs c, valid from now for ttl.
func (s *Server) signCap(c auth.Capability, now time.Time, ttl time.Duration) (api.PeerCapability, error) {
	c.Issued, c.Expires = now.Unix(), now.Add(ttl).Unix()
	tok, err := auth.SignCapability(c, s.tls.ownCert())
	if err != nil {
		return api.PeerCapability{}, err
	}
	return api.PeerCapability{Peer: c.Peer, Op: c.Op, Capability: tok, Expires: time.Unix(c.Expires, 0).UTC()}, nil
}

func (s *Server) handleCapabilities(w http.ResponseWriter, r *http.Request) {
	var req api.CapabilityRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if req.Blob != "" {
		if err := storage.CheckHash(req.Blob); err != nil {
			writeErr(w, fmt.Errorf("%w: blob: %v", errBadRequest, err))
			return
		}
	}
	var (
		caps []api.PeerCapability
		err  error
	)
	switch req.Op {
	case auth.CapPut:
		caps, err = s.putCaps(principalOf(r).ID, req.Blob, time.Now())
	case auth.CapGet:
		if err = s.mayRead(r, req.Blob); err == nil {
			caps, err = s.getCaps(principalOf(r).ID, req.Blob, time.Now())
		}
	default:
		err = fmt.Errorf("%w: capability op %q: want %q or %q (deletes are the leader's own)", errBadRequest, req.Op, auth.CapPut, auth.CapGet)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CapabilityResponse{Caps: caps})
}

// putCaps grants holder a put capability on each live storage peer.
func (s *Server) putCaps(holder, blob string, now time.Time) ([]api.PeerCapability, error) {
	var peers []api.StoragePeer
	s.store.FSM().View(func(l *ledger.Ledger) { peers = l.StoragePeers(true) })
	out := make([]api.PeerCapability, 0, len(peers))
	for _, p := range peers {
		c, err := s.signCap(auth.Capability{Op: auth.CapPut, Peer: p.ID, Blob: blob, Holder: holder}, now, putCapTTL)
		if err != nil {
			return nil, err
		}
		c.Address = p.Address
		out = append(out, c)
	}
	return out, nil
}

// getCaps grants holder a get capability on each peer holding a shard of
// blob, naming its shards.
func (s *Server) getCaps(holder, blob string, now time.Time) ([]api.PeerCapability, error) {
	m := s.manifest(blob)
	if m == nil {
		return nil, fmt.Errorf("%w: no manifest for %s (an inline blob, or none)", ledger.ErrBlobMissing, blob)
	}
	held := shardsByPeer(m, nil)
	return s.signEach(held, auth.Capability{Op: auth.CapGet, Blob: blob, Holder: holder}, now, getCapTTL)
}

// shardsByPeer groups m's placed shards by peer, only in segments (nil:
// all).
func shardsByPeer(m *storage.Manifest, segments map[int]bool) map[string][]string {
	out := map[string][]string{}
	for i, seg := range m.Segments {
		if segments != nil && !segments[i] {
			continue
		}
		for _, sh := range seg.Shards {
			if sh.Peer != "" && !slices.Contains(out[sh.Peer], sh.Hash) {
				out[sh.Peer] = append(out[sh.Peer], sh.Hash)
			}
		}
	}
	return out
}

// maxCapShards bounds the shards one capability names, so it stays well
// under auth.MaxCapabilitySize (about 90 bytes a shard): a peer holding
// more of a blob gets several.
var maxCapShards = 2048 // a var for tests (export_test.go)

// signEach signs a copy of c for each peer with its shards (nil: a put
// naming none), several for a peer with more than maxCapShards, and adds
// the peers' addresses as the ledger knows them.
func (s *Server) signEach(shards map[string][]string, c auth.Capability, now time.Time, ttl time.Duration) ([]api.PeerCapability, error) {
	addr := map[string]string{}
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, p := range l.StoragePeers(false) {
			addr[p.ID] = p.Address
		}
	})
	out := make([]api.PeerCapability, 0, len(shards))
	for _, peer := range slices.Sorted(maps.Keys(shards)) {
		held := shards[peer]
		for first := true; first || len(held) > 0; first = false {
			n := min(len(held), maxCapShards)
			c.Peer, c.Shards = peer, held[:n]
			held = held[n:]
			pc, err := s.signCap(c, now, ttl)
			if err != nil {
				return nil, err
			}
			pc.Address = addr[peer]
			out = append(out, pc)
		}
	}
	return out, nil
}

// withRepairCaps signs the capabilities a repair order needs: a put on
// each target (naming no shard, as an uploader's: a blob's shards can be
// more than one capability holds, and the targets' quotas bound what any
// put may write) and a get on each holder for the shards of the segments
// with lost shards (a repairer also rebuilds shards it finds missing while
// fetching, so any shard of those segments).
func (s *Server) withRepairCaps(o api.RepairOrder, now time.Time) (api.RepairOrder, error) {
	m := s.manifest(o.Blob)
	if m == nil {
		return o, fmt.Errorf("%w: no manifest for %s", ledger.ErrBlobMissing, o.Blob)
	}
	segments := map[int]bool{}
	for _, l := range o.Lost {
		segments[l.Segment] = true
	}
	ttl := max(s.repairs.timeout, putCapTTL)
	puts := map[string][]string{}
	for _, t := range o.Targets {
		puts[t] = nil
	}
	c := auth.Capability{Blob: o.Blob, Holder: leaderHolder}
	c.Op = auth.CapPut
	putCaps, err := s.signEach(puts, c, now, ttl)
	if err != nil {
		return o, err
	}
	c.Op = auth.CapGet
	getCaps, err := s.signEach(shardsByPeer(m, segments), c, now, ttl)
	if err != nil {
		return o, err
	}
	o.Caps = append(putCaps, getCaps...)
	return o, nil
}

// repairOrdersFor hands worker its repair orders with their capabilities;
// an order that cannot be signed (its blob just deleted) is dropped and
// planned again if still needed.
func (s *Server) repairOrdersFor(worker string) []api.RepairOrder {
	var out []api.RepairOrder
	now := time.Now()
	for _, o := range s.repairs.ordersFor(worker) {
		signed, err := s.withRepairCaps(o, now)
		if err != nil {
			s.log.Warn("repair order not sent", "blob", o.Blob, "peer", worker, "err", err)
			continue
		}
		out = append(out, signed)
	}
	return out
}

// proofCapTTL bounds the get capability the server gives itself to
// challenge a holder: it is used at once.
const proofCapTTL = time.Minute

// challengeClient is a client for the storage peer id at addr that reads
// (and asks for proofs) on a get capability this server signs for each
// shard as it asks. The server's certificate already lets it read on a TLS
// peer; the capability makes the leader's audits and repair checks work on
// any peer the grid admits, a plain-HTTP one included.
func (s *Server) challengeClient(id, addr string) *storage.ShardClient {
	c := s.shardClient(addr)
	c.CapFor = func(op, hash string) string {
		if op != auth.CapGet {
			return ""
		}
		pc, err := s.signCap(auth.Capability{Op: auth.CapGet, Peer: id, Shards: []string{hash}, Holder: leaderHolder}, time.Now(), proofCapTTL)
		if err != nil {
			s.log.Debug("sign a capability to challenge a holder", "peer", id, "err", err)
			return ""
		}
		return pc.Capability
	}
	return c
}
