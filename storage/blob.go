package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// MaxInline is the largest blob kept inline in the ledger. Until blobs are
// erasure-coded across peers, every module, task input and task result is
// inline, so this bounds each of them.
const MaxInline = 32 << 20

// DefaultInlineThreshold is the default largest blob kept inline in the ledger
// once blobs are erasure-coded: anything larger goes through Put and a
// Manifest.
const DefaultInlineThreshold = 16 << 10

var (
	// ErrTooLarge is wrapped when a blob is over MaxInline.
	ErrTooLarge = errors.New("blob too large for the ledger")
	// ErrHashMismatch is wrapped when bytes do not match the hash that names them.
	ErrHashMismatch = errors.New("blob hash mismatch")
	// ErrBadHash is wrapped when a string is not a hex SHA-256.
	ErrBadHash = errors.New("not a blob hash")
)

// Hash names a blob: the hex SHA-256 of its bytes.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// shardHash names a shard: the same form as a blob name, so a shard is
// content-addressed like a blob.
func shardHash(data []byte) string { return Hash(data) }

// newShardHasher streams shardHash.
func newShardHasher() hash.Hash { return sha256.New() }

// CheckHash reports whether s is a well-formed blob name.
func CheckHash(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("%w: %q has %d characters, want 64", ErrBadHash, s, len(s))
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: %q has a character that is not lower-case hex", ErrBadHash, s)
		}
	}
	return nil
}

// Verify checks that data is the blob named hash.
func Verify(hash string, data []byte) error {
	if got := Hash(data); got != hash {
		return fmt.Errorf("%w: want %s, bytes hash to %s", ErrHashMismatch, hash, got)
	}
	return nil
}

// CheckInline reports whether a blob of size bytes may live in the ledger.
func CheckInline(what string, size int) error {
	if size > MaxInline {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d bytes (%d MiB)", ErrTooLarge, what, size, MaxInline, MaxInline>>20)
	}
	return nil
}
