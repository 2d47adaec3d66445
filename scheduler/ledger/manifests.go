package ledger

import (
	"fmt"
	"slices"

	"github.com/peergrid/peergrid/storage"
)

// applyCommitManifest commits a blob's first manifest, or, for a blob that
// has one, only a retry of it or a repair's move of the shards in c.Moves
// (see CommitManifestCommand). It is the rule every server applies, so no
// server can be talked into a replacement the others refuse.
func (l *Ledger) applyCommitManifest(c *CommitManifestCommand) any {
	m := c.Manifest
	if m == nil {
		return fmt.Errorf("%w: commit-manifest without a manifest", ErrBadCommand)
	}
	if old := l.manifests[m.Hash]; old != nil {
		moved, err := checkManifestChange(old, m, c.Moves)
		if err != nil {
			return err
		}
		if len(moved) == 0 {
			l.chargeBlob(m.Hash, -1) // quotas: see chargeBlob
			l.noteBlob(m.Hash, c.Now, c.Pin, c.Owner)
			l.chargeBlob(m.Hash, +1)
			return nil
		}
	}
	l.chargeBlob(m.Hash, -1)
	l.setManifest(m.Hash, m)
	l.noteBlob(m.Hash, c.Now, c.Pin, c.Owner)
	l.chargeBlob(m.Hash, +1)
	return nil
}

// checkManifestChange returns the shards m moves from old, if m describes
// the same content and every shard it moves is in allowed and goes to a
// peer; else an error wrapping ErrManifestCommitted that says why.
func checkManifestChange(old, m *storage.Manifest, allowed []storage.ShardLoc) ([]storage.ShardLoc, error) {
	if err := storage.SameContent(old, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifestCommitted, err)
	}
	moved := storage.Moved(old, m)
	if len(moved) == 0 {
		return nil, nil
	}
	if err := storage.SameRoots(old, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifestCommitted, err)
	}
	for _, loc := range moved {
		if !slices.Contains(allowed, loc) {
			return nil, fmt.Errorf("%w: blob %s: %s moves from peer %q to %q, and only a repair the leader ordered may move a shard",
				ErrManifestCommitted, m.Hash, loc, old.Segments[loc.Segment].Shards[loc.Index].Peer, m.Segments[loc.Segment].Shards[loc.Index].Peer)
		}
		if m.Segments[loc.Segment].Shards[loc.Index].Peer == "" {
			return nil, fmt.Errorf("%w: blob %s: %s would be left on no peer; a repair moves a shard to a new peer", ErrManifestCommitted, m.Hash, loc)
		}
	}
	return moved, nil
}

// SomeManifests returns up to n manifests, in Go's map order (a new start
// each call): a sample for the leader's shard audit, which over many rounds
// reaches every blob without sorting them all each time. Manifests are
// replaced, never changed in place, so they may be kept past View.
func (l *Ledger) SomeManifests(n int) []*storage.Manifest {
	out := make([]*storage.Manifest, 0, min(n, len(l.manifests)))
	for _, m := range l.manifests {
		if len(out) == n {
			break
		}
		out = append(out, m)
	}
	return out
}
