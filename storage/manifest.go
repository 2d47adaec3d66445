package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ManifestVersion is the version of the manifest encoding written by
// EncodeManifest. DecodeManifest refuses any other.
//
// Version 2 names a segment by SegmentHash, a hash over its length and its
// ordered shard hashes, instead of (version 1) the SHA-256 of the segment's
// bytes, which cost a put and a get one extra pass over every byte while
// proving nothing the shard hashes and the blob hash do not. Version 1 was a
// pre-release format that no deployment ever committed, so it is refused
// (with an error saying so) rather than read: a blob put by a pre-release
// build must be put again.
const ManifestVersion = 2

// Limits a manifest must respect. They bound what a decoder will accept.
const (
	// MaxShards is the most shards (k+m) a segment may have (a reedsolomon limit).
	MaxShards = 256
	// MaxSegmentSize is the largest segment a manifest may name.
	MaxSegmentSize = 256 << 20
	// MaxPeerID is the longest peer id a manifest may carry.
	MaxPeerID = 128
)

// ErrBadManifest is wrapped by every manifest validation failure.
var ErrBadManifest = errors.New("bad blob manifest")

// Manifest says how a blob too large for the ledger is stored: its segments,
// the shards of each segment and which peer holds each shard. It is what the
// ledger commits; storage only reads and writes bytes as it says.
type Manifest struct {
	Version     int       `json:"version"`
	Hash        string    `json:"hash"`         // SHA-256 of the whole blob
	Size        int64     `json:"size"`         // bytes in the blob
	SegmentSize int64     `json:"segment_size"` // bytes per segment; the last may be shorter
	K           int       `json:"k"`            // data shards per segment
	M           int       `json:"m"`            // parity shards per segment
	Segments    []Segment `json:"segments"`
}

// Segment is one fixed-size piece of a blob, coded into K+M shards.
type Segment struct {
	Hash   string  `json:"hash"`   // SegmentHash of the segment's length and shard hashes
	Shards []Shard `json:"shards"` // K data shards, then M parity shards
}

// Shard is one coded piece of a segment and where it lives.
type Shard struct {
	Hash string `json:"hash"` // SHA-256 of the shard's bytes
	// Root is the ProofRoot of the shard's bytes: the root of a Merkle tree
	// over its ProofChunk-byte chunks, by which a holder proves it has the
	// shard without sending it (see Health). "" in manifests written before
	// proofs: their shards are checked by fetching them whole.
	Root string `json:"root,omitempty"`
	// Peer is the id of the storage peer holding the shard; "" if the shard
	// is not placed (a put with too few peers, see PutOptions.AllowFewerParity).
	Peer string `json:"peer"`
}

// ShardLoc names one shard of a blob: a segment and an index within it.
type ShardLoc struct {
	Segment int `json:"segment"`
	Index   int `json:"index"`
}

func (l ShardLoc) String() string { return fmt.Sprintf("segment %d shard %d", l.Segment, l.Index) }

// EncodeManifest returns the versioned encoding of m (JSON). It validates m first.
func EncodeManifest(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// DecodeManifest parses and validates an encoded manifest. Unknown fields,
// trailing data and any inconsistency are refused with ErrBadManifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the manifest", ErrBadManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every field of m: version, hashes, sizes, the segment
// count, the shard count of each segment and that no peer holds two shards of
// one segment. Each segment must have at least K placed shards.
func (m *Manifest) Validate() error {
	if err := m.validateHeader(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	for i := range m.Segments {
		if err := m.validateSegment(i); err != nil {
			return fmt.Errorf("%w: blob %s: segment %d: %v", ErrBadManifest, m.Hash, i, err)
		}
	}
	return nil
}

func (m *Manifest) validateHeader() error {
	switch {
	case m.Version == 1:
		return fmt.Errorf("version 1 is a pre-release manifest format that is no longer read (want version %d): put the blob again", ManifestVersion)
	case m.Version != ManifestVersion:
		return fmt.Errorf("version %d, want %d", m.Version, ManifestVersion)
	case CheckHash(m.Hash) != nil:
		return CheckHash(m.Hash)
	case m.Size < 0:
		return fmt.Errorf("blob %s: negative size %d", m.Hash, m.Size)
	case m.SegmentSize < 1 || m.SegmentSize > MaxSegmentSize:
		return fmt.Errorf("blob %s: segment size %d out of range 1..%d", m.Hash, m.SegmentSize, MaxSegmentSize)
	case m.K < 1 || m.M < 0 || m.K+m.M > MaxShards:
		return fmt.Errorf("blob %s: k=%d m=%d, want k>=1, m>=0, k+m<=%d", m.Hash, m.K, m.M, MaxShards)
	case int64(m.K) > m.SegmentSize:
		return fmt.Errorf("blob %s: k=%d is more than the segment size %d", m.Hash, m.K, m.SegmentSize)
	}
	if want := segmentCount(m.Size, m.SegmentSize); int64(len(m.Segments)) != want {
		return fmt.Errorf("blob %s: %d segments, size %d in segments of %d needs %d", m.Hash, len(m.Segments), m.Size, m.SegmentSize, want)
	}
	return nil
}

func (m *Manifest) validateSegment(seg int) error {
	s := &m.Segments[seg]
	if err := CheckHash(s.Hash); err != nil {
		return err
	}
	if len(s.Shards) != m.K+m.M {
		return fmt.Errorf("%d shards, want k+m=%d", len(s.Shards), m.K+m.M)
	}
	holders := make(map[string]int, len(s.Shards))
	for i, sh := range s.Shards {
		if err := CheckHash(sh.Hash); err != nil {
			return fmt.Errorf("shard %d: %v", i, err)
		}
		if sh.Root != "" && CheckHash(sh.Root) != nil {
			return fmt.Errorf("shard %d: proof root: %v", i, CheckHash(sh.Root))
		}
		if sh.Peer == "" {
			continue
		}
		if err := checkPeerID(sh.Peer); err != nil {
			return fmt.Errorf("shard %d: %v", i, err)
		}
		if j, dup := holders[sh.Peer]; dup {
			return fmt.Errorf("shards %d and %d both on peer %q", j, i, sh.Peer)
		}
		holders[sh.Peer] = i
	}
	if len(holders) < m.K {
		return fmt.Errorf("%d shards placed, need at least k=%d", len(holders), m.K)
	}
	if want := SegmentHash(m.K, m.SegmentLen(seg), s.Shards); s.Hash != want {
		return fmt.Errorf("segment hash %s does not match its length and shard hashes (%s)", s.Hash, want)
	}
	return nil
}

// SegmentHash names a segment in a version 2 manifest: the hex SHA-256 of a
// domain tag, k, the segment's length in bytes and its ordered shard hashes
// (K data shards, then M parity shards). It commits to exactly what a reader
// checks: every shard is verified against its hash, decoding verified shards
// is deterministic, and Get checks the blob's SHA-256 at the end, so hashing
// the segment's bytes again would add a pass over the data and no assurance.
func SegmentHash(k int, segLen int64, shards []Shard) string {
	h := sha256.New()
	b := make([]byte, 0, 64+len(shards)*65)
	b = append(b, "peergrid segment v2\nk="...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, "\nlen="...)
	b = strconv.AppendInt(b, segLen, 10)
	b = append(b, '\n')
	for _, sh := range shards {
		b = append(b, sh.Hash...)
		b = append(b, '\n')
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func checkPeerID(id string) error {
	if len(id) > MaxPeerID {
		return fmt.Errorf("peer id of %d bytes, limit %d", len(id), MaxPeerID)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("peer id %q has a space, control or non-ASCII byte", id)
		}
	}
	return nil
}

func segmentCount(size, segSize int64) int64 {
	return (size + segSize - 1) / segSize
}

// SegmentLen is the number of blob bytes in segment i.
func (m *Manifest) SegmentLen(i int) int64 {
	return min(m.SegmentSize, m.Size-int64(i)*m.SegmentSize)
}

// ShardSize is the size of every shard of segment i: the segment split into K
// equal parts, the last zero-padded.
func (m *Manifest) ShardSize(i int) int64 {
	return shardSize(m.SegmentLen(i), m.K)
}

func shardSize(segLen int64, k int) int64 { return (segLen + int64(k) - 1) / int64(k) }

// Clone returns a deep copy of m, so a repair can change placement without
// touching the committed manifest.
func (m *Manifest) Clone() *Manifest {
	c := *m
	c.Segments = make([]Segment, len(m.Segments))
	for i, s := range m.Segments {
		c.Segments[i] = Segment{Hash: s.Hash, Shards: append([]Shard(nil), s.Shards...)}
	}
	return &c
}

// Unplaced lists the shards no peer holds (left by a put with
// AllowFewerParity); Repair places them.
func (m *Manifest) Unplaced() []ShardLoc {
	return m.Lost(func(peer string) bool { return peer != "" })
}

// Lost lists every shard whose holder is not live (live(peer) is false), and
// every unplaced shard: the input the leader gives Repair when peers die.
func (m *Manifest) Lost(live func(peer string) bool) []ShardLoc {
	var lost []ShardLoc
	for s, seg := range m.Segments {
		for i, sh := range seg.Shards {
			if sh.Peer == "" || !live(sh.Peer) {
				lost = append(lost, ShardLoc{Segment: s, Index: i})
			}
		}
	}
	return lost
}

// Redundancy is the fewest placed shards of any segment minus K: how many
// more holders the blob can lose and stay readable. It is M unless a put with
// AllowFewerParity left shards unplaced.
func (m *Manifest) Redundancy() int {
	r := m.M
	for _, seg := range m.Segments {
		placed := 0
		for _, sh := range seg.Shards {
			if sh.Peer != "" {
				placed++
			}
		}
		r = min(r, placed-m.K)
	}
	return r
}

// Peers lists the distinct peers holding any shard of the blob.
func (m *Manifest) Peers() []string {
	seen := map[string]bool{}
	var out []string
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			if sh.Peer != "" && !seen[sh.Peer] {
				seen[sh.Peer] = true
				out = append(out, sh.Peer)
			}
		}
	}
	return out
}
