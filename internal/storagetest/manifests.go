package storagetest

import (
	"fmt"
	"math/rand/v2"

	"github.com/peergrid/peergrid/storage"
)

// PeerID is the id of the i-th storage peer of RandomManifest's ledgers:
// peer-00, peer-01, ...
func PeerID(i int) string { return fmt.Sprintf("peer-%02d", i) }

// RandomManifest is a valid manifest of 1-3 segments (k=4, m=2) for blob
// n (its hash is n in 64 hex digits) whose shards sit on distinct peers of
// PeerID(0..peers-1); with unplaced > 0, that many parity shards of its
// first segment are left unplaced. Shard hashes are unique to n. No shard
// bytes exist: it is for ledger and planner tests.
func RandomManifest(r *rand.Rand, n, peers, unplaced int) *storage.Manifest {
	const k, m, segSize = 4, 2, 1 << 20
	segs := 1 + r.IntN(3)
	man := &storage.Manifest{Version: storage.ManifestVersion, Hash: fmt.Sprintf("%064x", n), K: k, M: m,
		SegmentSize: segSize, Size: int64(segs-1)*segSize + 100}
	for s := range segs {
		start := r.IntN(peers)
		shards := make([]storage.Shard, k+m)
		for i := range shards {
			shards[i] = storage.Shard{Hash: fmt.Sprintf("%032x%032x", n+1, s*(k+m)+i+1), Peer: PeerID((start + i) % peers)}
		}
		if s == 0 {
			for i := range min(unplaced, m) {
				shards[k+i].Peer = ""
			}
		}
		man.Segments = append(man.Segments, storage.Segment{Hash: storage.SegmentHash(k, man.SegmentLen(s), shards), Shards: shards})
	}
	return man
}
