package storage

import (
	"errors"
	"fmt"
)

// ErrManifestDiffers is wrapped when a manifest says something other than
// the committed manifest of the same blob beyond where its shards are.
var ErrManifestDiffers = errors.New("manifest differs from the committed one")

// SameContent reports, as an error naming the first difference, whether b
// describes different bytes than a (the committed manifest): another coding
// (size, segment size, k, m), another segment or shard hash, or another
// proof root where a has one (a manifest committed before proofs has none,
// and the same bytes put again by a newer client come with them; see
// SameRoots for the strict check). Placement (which peer holds each shard)
// is not compared: see Moved.
//
// The blob hash is the SHA-256 of the plaintext, so no one without the bytes
// can tell which of two differently coded manifests is right; that is why a
// committed manifest is write-once and only its placement may change.
func SameContent(a, b *Manifest) error {
	if err := sameHeader(a, b); err != nil {
		return fmt.Errorf("%w: blob %s: %v", ErrManifestDiffers, a.Hash, err)
	}
	for s := range a.Segments {
		if err := sameSegment(&a.Segments[s], &b.Segments[s]); err != nil {
			return fmt.Errorf("%w: blob %s: segment %d: %v", ErrManifestDiffers, a.Hash, s, err)
		}
	}
	return nil
}

func sameHeader(a, b *Manifest) error {
	switch {
	case a.Version != b.Version:
		return fmt.Errorf("version %d, committed %d", b.Version, a.Version)
	case a.Hash != b.Hash:
		return fmt.Errorf("blob hash %s, committed %s", b.Hash, a.Hash)
	case a.Size != b.Size:
		return fmt.Errorf("size %d, committed %d", b.Size, a.Size)
	case a.SegmentSize != b.SegmentSize:
		return fmt.Errorf("segment size %d, committed %d", b.SegmentSize, a.SegmentSize)
	case a.K != b.K || a.M != b.M:
		return fmt.Errorf("k=%d m=%d, committed k=%d m=%d", b.K, b.M, a.K, a.M)
	case len(a.Segments) != len(b.Segments):
		return fmt.Errorf("%d segments, committed %d", len(b.Segments), len(a.Segments))
	}
	return nil
}

// sameSegment compares shards first: a shard that differs is what a reader
// would trip on, and the segment hash only follows from the shard hashes.
func sameSegment(a, b *Segment) error {
	if len(a.Shards) != len(b.Shards) {
		return fmt.Errorf("%d shards, committed %d", len(b.Shards), len(a.Shards))
	}
	for i := range a.Shards {
		x, y := a.Shards[i], b.Shards[i]
		if x.Hash != y.Hash {
			return fmt.Errorf("shard %d hash %s, committed %s", i, y.Hash, x.Hash)
		}
		if x.Root != "" && x.Root != y.Root {
			return fmt.Errorf("shard %d proof root %q, committed %q", i, y.Root, x.Root)
		}
	}
	if a.Hash != b.Hash {
		return fmt.Errorf("segment hash %s, committed %s", b.Hash, a.Hash)
	}
	return nil
}

// SameRoots reports whether b carries exactly a's proof roots (none where
// a has none), as a replacement must: roots a committed manifest lacks
// cannot be checked by anyone without the bytes, so none are added later.
func SameRoots(a, b *Manifest) error {
	for s := range a.Segments {
		for i := range a.Segments[s].Shards {
			if x, y := a.Segments[s].Shards[i].Root, b.Segments[s].Shards[i].Root; x != y {
				return fmt.Errorf("%w: blob %s: segment %d: shard %d proof root %q, committed %q", ErrManifestDiffers, a.Hash, s, i, y, x)
			}
		}
	}
	return nil
}

// OtherCoding reports whether b could be the same blob as a coded another
// way: the same size and version, another segment size, k or m. Its shard
// hashes then differ from a's, and only the bytes could say which is true.
// Any other difference in content (another size, or other shard hashes
// under the same coding, which encodes the same bytes to the same shards)
// is not the same blob.
func OtherCoding(a, b *Manifest) bool {
	return a.Version == b.Version && a.Hash == b.Hash && a.Size == b.Size &&
		(a.SegmentSize != b.SegmentSize || a.K != b.K || a.M != b.M)
}

// Moved lists the shards whose holder differs between a and b, two manifests
// of the same content (SameContent(a, b) == nil), in manifest order.
func Moved(a, b *Manifest) []ShardLoc {
	var out []ShardLoc
	for s := range a.Segments {
		for i := range a.Segments[s].Shards {
			if a.Segments[s].Shards[i].Peer != b.Segments[s].Shards[i].Peer {
				out = append(out, ShardLoc{Segment: s, Index: i})
			}
		}
	}
	return out
}
