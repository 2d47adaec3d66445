package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

// The leader's shard audit: every AuditInterval it challenges one random
// shard of each of up to AuditShards blobs (storage.CheckHolder, the proof
// blob stat uses), so a storage peer that heartbeats but lost, dropped or
// never kept its shards is found without waiting for a reader to trip on
// it. A shard whose holder answers wrongly (missing, corrupt, a proof that
// does not check out) is reported like a reader's fault and rebuilt
// elsewhere; a holder that cannot be reached is left to liveness (it is
// marked down and repaired after the grace), so a network blip moves no
// shard.

// auditCheckTimeout bounds one challenge.
const auditCheckTimeout = 5 * time.Second

// auditLoop audits until ctx (the leadership) ends.
func (s *Server) auditLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.AuditInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.auditShards(ctx)
		}
	}
}

// auditTarget is one shard to challenge and where its holder serves.
type auditTarget struct {
	m    *storage.Manifest
	loc  storage.ShardLoc
	addr string
}

// auditShards runs one round and reports the shards that failed.
func (s *Server) auditShards(ctx context.Context) {
	for _, t := range s.auditTargets() {
		cctx, cancel := context.WithTimeout(ctx, auditCheckTimeout)
		sh := t.m.Segments[t.loc.Segment].Shards[t.loc.Index]
		err := storage.CheckHolder(cctx, s.challengeClient(sh.Peer, t.addr), sh, t.m.ShardSize(t.loc.Segment))
		cancel()
		if ctx.Err() != nil {
			return
		}
		if failedAudit(err) {
			s.log.Warn("shard failed its audit", "blob", t.m.Hash, "segment", t.loc.Segment, "shard", t.loc.Index, "peer", sh.Peer, "err", err)
			s.metrics.auditFailures.Inc() // metrics
			s.repairs.report(t.m.Hash, []storage.ShardLoc{t.loc})
		}
	}
}

// failedAudit tells a holder's wrong answer from no answer.
func failedAudit(err error) bool {
	return errors.Is(err, storage.ErrShardNotFound) || errors.Is(err, storage.ErrCorruptShard) ||
		errors.Is(err, storage.ErrBadProof) || errors.Is(err, storage.ErrHashMismatch)
}

// auditTargets picks, for a sample of blobs, one random placed shard on a
// live storage peer.
func (s *Server) auditTargets() []auditTarget {
	var out []auditTarget
	s.store.FSM().View(func(l *ledger.Ledger) {
		addr := map[string]string{}
		for _, p := range l.StoragePeers(true) {
			addr[p.ID] = p.Address
		}
		for _, m := range l.SomeManifests(s.cfg.AuditShards) {
			var live []storage.ShardLoc
			for seg := range m.Segments {
				for i, sh := range m.Segments[seg].Shards {
					if addr[sh.Peer] != "" {
						live = append(live, storage.ShardLoc{Segment: seg, Index: i})
					}
				}
			}
			if len(live) > 0 {
				loc := live[rand.IntN(len(live))]
				out = append(out, auditTarget{m: m, loc: loc, addr: addr[m.Segments[loc.Segment].Shards[loc.Index].Peer]})
			}
		}
	})
	return out
}
