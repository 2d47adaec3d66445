package storage_test

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
)

// TestProof_EveryChunkOfEverySizeVerifies: for shards of one chunk, a
// chunk's edge, several and a power of two of chunks, every chunk's proof
// checks out against the shard's root.
func TestProof_EveryChunkOfEverySizeVerifies(t *testing.T) {
	const c = storage.ProofChunk
	for _, size := range []int{0, 1, c - 1, c, c + 1, 3*c + 5, 8 * c, 13*c + 7} {
		data := storagetest.RandomBytes(uint64(size)+1, size)
		root := storage.ProofRoot(data)
		for chunk := range storage.ProofChunks(int64(size)) {
			p, err := storage.BuildProof(data, chunk)
			if err != nil {
				t.Fatalf("size %d chunk %d: %v", size, chunk, err)
			}
			if err := storage.VerifyProof(root, int64(size), chunk, p); err != nil {
				t.Fatalf("size %d chunk %d: %v", size, chunk, err)
			}
		}
	}
}

// TestProof_ForgeriesFail: a proof of other bytes, of another chunk than
// the one challenged, with a changed path or a truncated chunk, is refused.
func TestProof_ForgeriesFail(t *testing.T) {
	const size = 13*storage.ProofChunk + 7
	data := storagetest.RandomBytes(5, size)
	root := storage.ProofRoot(data)
	other := storagetest.RandomBytes(6, size)
	good, err := storage.BuildProof(data, 12)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(f func(p *storage.ShardProof)) *storage.ShardProof {
		p := *good
		p.Data = append([]byte(nil), good.Data...)
		p.Path = append([]string(nil), good.Path...)
		f(&p)
		return &p
	}
	otherBytes, _ := storage.BuildProof(other, 12)
	wrongChunk, _ := storage.BuildProof(data, 11)
	for name, p := range map[string]*storage.ShardProof{
		"other bytes":    otherBytes,
		"another chunk":  wrongChunk,
		"flipped byte":   forge(func(p *storage.ShardProof) { p.Data[0] ^= 1 }),
		"short chunk":    forge(func(p *storage.ShardProof) { p.Data = p.Data[:len(p.Data)-1] }),
		"changed path":   forge(func(p *storage.ShardProof) { p.Path[0] = hex.EncodeToString(make([]byte, 32)) }),
		"path too short": forge(func(p *storage.ShardProof) { p.Path = p.Path[1:] }),
		"path too long":  forge(func(p *storage.ShardProof) { p.Path = append(p.Path, p.Path[0]) }),
		"path not hex":   forge(func(p *storage.ShardProof) { p.Path[0] = "zz" }),
	} {
		if err := storage.VerifyProof(root, size, 12, p); !errors.Is(err, storage.ErrBadProof) {
			t.Fatalf("%s: %v, want ErrBadProof", name, err)
		}
	}
	if err := storage.VerifyProof(root, size, 14, good); !errors.Is(err, storage.ErrBadProof) {
		t.Fatalf("challenge past the last chunk: %v", err)
	}
}

// BenchmarkProofRoot: the proof root of a 1 MiB shard (a 4 MiB segment's
// shard at k=4), against the shard's SHA-256 that Put computes anyway: the
// root is the extra hashing a put pays for proofs of possession.
func BenchmarkProofRoot(b *testing.B) {
	shard := storagetest.RandomBytes(7, 1<<20)
	b.Run("proof_root", func(b *testing.B) {
		b.SetBytes(int64(len(shard)))
		for b.Loop() {
			storage.ProofRoot(shard)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(shard)))
		for b.Loop() {
			storage.Hash(shard)
		}
	})
}
