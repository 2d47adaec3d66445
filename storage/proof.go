package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ProofChunk is the size of the chunks a shard's proof tree is built over:
// a proof of possession sends one chunk and a path of about log2(shard size
// / ProofChunk) hashes (4 KiB and 8 hashes for a 1 MiB shard).
const ProofChunk = 4 << 10

// ErrBadProof is wrapped when a holder's answer to a challenge does not
// prove it holds the shard.
var ErrBadProof = errors.New("shard proof does not check out")

// ShardProof is a holder's answer to a challenge naming one chunk of a
// shard: the chunk's bytes and its Merkle audit path (RFC 6962 order: the
// sibling nearest the leaf first) up to the shard's root.
type ShardProof struct {
	Chunk int      `json:"chunk"`
	Data  []byte   `json:"data"`
	Path  []string `json:"path"` // hex SHA-256 node hashes
}

// ProofRoot is a shard's proof root: the RFC 6962 Merkle tree hash over
// its ProofChunk-byte chunks (the last may be shorter; an empty shard is
// one empty chunk), leaves hashed as SHA-256(0x00 || chunk) and nodes as
// SHA-256(0x01 || left || right). The manifest keeps it beside the shard
// hash, so a verifier that holds no bytes can check any chunk a holder
// sends.
func ProofRoot(data []byte) string {
	root := treeHash(leafHashes(data))
	return hex.EncodeToString(root[:])
}

// ProofChunks is how many chunks a shard of size bytes has.
func ProofChunks(size int64) int {
	return max(1, int((size+ProofChunk-1)/ProofChunk))
}

// BuildProof answers a challenge for chunk of the shard data.
func BuildProof(data []byte, chunk int) (*ShardProof, error) {
	n := ProofChunks(int64(len(data)))
	if chunk < 0 || chunk >= n {
		return nil, fmt.Errorf("%w: chunk %d of a shard with %d chunks", ErrBadProof, chunk, n)
	}
	leaves := leafHashes(data)
	var path []string
	for _, h := range auditPath(chunk, leaves) {
		path = append(path, hex.EncodeToString(h[:]))
	}
	return &ShardProof{Chunk: chunk, Data: chunkOf(data, chunk), Path: path}, nil
}

// VerifyProof checks that p proves possession of chunk of a shard of size
// bytes whose proof root is root.
func VerifyProof(root string, size int64, chunk int, p *ShardProof) error {
	n := ProofChunks(size)
	wantLen := min(int64(ProofChunk), size-int64(chunk)*ProofChunk)
	switch {
	case chunk < 0 || chunk >= n:
		return fmt.Errorf("%w: challenged chunk %d of a shard with %d chunks", ErrBadProof, chunk, n)
	case p.Chunk != chunk:
		return fmt.Errorf("%w: answered chunk %d, challenged %d", ErrBadProof, p.Chunk, chunk)
	case int64(len(p.Data)) != max(wantLen, 0):
		return fmt.Errorf("%w: chunk %d of %d bytes, want %d", ErrBadProof, chunk, len(p.Data), wantLen)
	}
	path := make([][32]byte, len(p.Path))
	for i, s := range p.Path {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("%w: path element %d is not a hex SHA-256", ErrBadProof, i)
		}
		copy(path[i][:], b)
	}
	got, err := rootFromPath(chunk, n, leafHash(p.Data), path)
	if err != nil {
		return err
	}
	if hex.EncodeToString(got[:]) != root {
		return fmt.Errorf("%w: chunk %d and its path lead to root %x, the manifest's is %s", ErrBadProof, chunk, got, root)
	}
	return nil
}

func chunkOf(data []byte, i int) []byte {
	return data[min(len(data), i*ProofChunk):min(len(data), (i+1)*ProofChunk)]
}

func leafHashes(data []byte) [][32]byte {
	n := ProofChunks(int64(len(data)))
	out := make([][32]byte, n)
	for i := range out {
		out[i] = leafHash(chunkOf(data, i))
	}
	return out
}

func leafHash(chunk []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(chunk)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// split is RFC 6962's k: the largest power of two below n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func treeHash(leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	return nodeHash(treeHash(leaves[:k]), treeHash(leaves[k:]))
}

// auditPath is RFC 6962's PATH(m, D[n]): the path of the subtree holding m,
// then the other subtree's hash.
func auditPath(m int, leaves [][32]byte) [][32]byte {
	if len(leaves) == 1 {
		return nil
	}
	k := split(len(leaves))
	if m < k {
		return append(auditPath(m, leaves[:k]), treeHash(leaves[k:]))
	}
	return append(auditPath(m-k, leaves[k:]), treeHash(leaves[:k]))
}

// rootFromPath climbs from leaf m of n back to the root, the inverse of
// auditPath: the path's last element is the sibling at the top.
func rootFromPath(m, n int, leaf [32]byte, path [][32]byte) ([32]byte, error) {
	if n == 1 {
		if len(path) != 0 {
			return leaf, fmt.Errorf("%w: %d path elements too many", ErrBadProof, len(path))
		}
		return leaf, nil
	}
	if len(path) == 0 {
		return leaf, fmt.Errorf("%w: path too short", ErrBadProof)
	}
	k, sib, rest := split(n), path[len(path)-1], path[:len(path)-1]
	if m < k {
		l, err := rootFromPath(m, k, leaf, rest)
		return nodeHash(l, sib), err
	}
	r, err := rootFromPath(m-k, n-k, leaf, rest)
	return nodeHash(sib, r), err
}
