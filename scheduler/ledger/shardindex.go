package ledger

import (
	"slices"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// shardIndex says which shard is placed on which storage peer, counting
// placements (shards are content-addressed: one file on a peer may serve
// several blobs, or several segments of one). It is derived from the
// manifests, never serialized: Apply keeps it up to date as manifests are
// put, replaced by a repair, or deleted, and Restore rebuilds it. Storage
// peers ask it which of their shard files are still wanted (see
// handlePlacedShards); the leader's garbage collector asks it which shards
// of a deleted blob no manifest places on their peer any more.
//
// It is one flat map keyed by (shard, peer): nearly every shard is on one
// peer, so a map of peers per shard cost ~300 B a shard against ~50 here,
// and the key's strings share their bytes with the manifest's.
type shardIndex map[ShardAt]int32

// ShardAt is one shard (by hash) on one storage peer (by id).
type ShardAt struct{ Hash, Peer string }

// add counts (d = +1) or uncounts (d = -1) every placed shard of m.
func (x shardIndex) add(m *storage.Manifest, d int32) {
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			if sh.Peer == "" {
				continue
			}
			at := ShardAt{sh.Hash, sh.Peer}
			if n := x[at] + d; n > 0 {
				x[at] = n
			} else {
				delete(x, at)
			}
		}
	}
}

// placedOn reports whether any manifest places the shard on peer.
func (x shardIndex) placedOn(hash, peer string) bool { return x[ShardAt{hash, peer}] > 0 }

// setManifest installs m as the manifest of its blob (nil m: deletes the
// blob's manifest), keeping the shard and blob indexes in step. Called from
// Apply and Restore only.
func (l *Ledger) setManifest(hash string, m *storage.Manifest) {
	if old := l.manifests[hash]; old != nil {
		l.placed.add(old, -1)
		l.byPeer.remove(old)
	}
	if m == nil {
		delete(l.manifests, hash)
		return
	}
	l.manifests[hash] = m
	l.placed.add(m, +1)
	l.byPeer.add(m)
}

// Heartbeats reports whether a peer sends heartbeats, so the leader must
// track its liveness: a worker, or a storage peer (which may be a server's
// storage-only peer under the server's id). A plain server does not.
func (p *Peer) Heartbeats() bool {
	return slices.Contains(p.Roles, api.RoleWorker) || slices.Contains(p.Roles, api.RoleStorage)
}

// ShardAddress is where a storage peer serves shards: the address it gave
// as a storage peer, else (a ledger from before storage addresses were kept
// apart) its address.
func (p *Peer) ShardAddress() string {
	if p.StorageAddress != "" {
		return p.StorageAddress
	}
	return p.Address
}
