package ledger

import (
	"slices"

	"github.com/peergrid/peergrid/storage"
)

// blobIndex finds the blobs that may need repair without walking every
// manifest: the blobs with a shard on each peer (so a peer going down names
// its blobs) and the blobs with a shard placed on no peer. Like shardIndex it
// is derived from the manifests and never serialized: setManifest keeps it in
// step and Restore rebuilds it through setManifest. It costs one entry per
// blob per peer holding any of its shards, not one per shard.
type blobIndex struct {
	onPeer   map[string]map[string]struct{} // peer -> blobs with a shard on it
	unplaced map[string]struct{}            // blobs with an unplaced shard
}

func newBlobIndex() blobIndex {
	return blobIndex{onPeer: map[string]map[string]struct{}{}, unplaced: map[string]struct{}{}}
}

// add indexes m's blob under every peer holding a shard of it, and as
// unplaced if a shard of it is placed nowhere.
func (x blobIndex) add(m *storage.Manifest) {
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			if sh.Peer == "" {
				x.unplaced[m.Hash] = struct{}{}
				continue
			}
			blobs := x.onPeer[sh.Peer]
			if blobs == nil {
				blobs = map[string]struct{}{}
				x.onPeer[sh.Peer] = blobs
			}
			blobs[m.Hash] = struct{}{}
		}
	}
}

// remove undoes add(m). Every entry of a blob comes from its one manifest,
// so removing the old manifest before adding its replacement is exact.
func (x blobIndex) remove(m *storage.Manifest) {
	delete(x.unplaced, m.Hash)
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			if blobs := x.onPeer[sh.Peer]; blobs != nil {
				delete(blobs, m.Hash)
				if len(blobs) == 0 {
					delete(x.onPeer, sh.Peer)
				}
			}
		}
	}
}

// RepairCandidates are the blobs that may have lost shards, sorted: those
// with a shard on a gone peer, those with an unplaced shard, and those of
// faulty (blobs with reported faults) that still have a manifest. Every blob
// with a lost shard is among them; lostShards decides which really do.
func (l *Ledger) RepairCandidates(gone func(peer string) bool, faulty []string) []string {
	set := map[string]struct{}{}
	for p, blobs := range l.byPeer.onPeer {
		if gone(p) {
			for h := range blobs {
				set[h] = struct{}{}
			}
		}
	}
	for h := range l.byPeer.unplaced {
		set[h] = struct{}{}
	}
	for _, h := range faulty {
		if l.manifests[h] != nil {
			set[h] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}
