package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
)

// A holder proves it has a shard by answering a challenge: the verifier
// names a chunk at random, the holder sends that chunk and its Merkle path
// (GET /v1/shards/{hash}/proof?chunk=N), and the verifier checks them
// against the proof root in the manifest (Shard.Root). It needs no bytes of
// its own and moves one chunk (ProofChunk) instead of the shard, so `blob
// stat`, the dashboard and the leader can check every shard often. A peer
// that holds nothing, or other bytes, cannot answer; one that kept a
// fraction f of the shard passes a challenge with probability f, so each
// check is a sample, and reads, which verify every shard they fetch, and
// the peers' scrubs catch the rest. HEAD is not proof and is not used for
// health.

// shardProver is a peer that can answer a challenge (ShardClient,
// LocalPeer); for others, and for shards without a proof root (manifests
// from before proofs), the verifier fetches the whole shard and hashes it.
type shardProver interface {
	Prove(ctx context.Context, hash string, chunk int) (*ShardProof, error)
}

var (
	_ shardProver = (*ShardClient)(nil)
	_ shardProver = LocalPeer{}
)

// errNoProofs is a peer that does not serve challenges (a build from before
// proofs: its router has no such route). The verifier fetches the whole
// shard instead, which is content verification too, only dearer; a peer
// that pretends to be old gains nothing by it.
var errNoProofs = errors.New("peer does not answer shard challenges")

// maxProofBody bounds a proof answer a verifier reads: one chunk, and a
// path for a shard of up to DefaultMaxShardSize, in JSON.
const maxProofBody = 4*ProofChunk + 64<<10

// CheckHolder verifies by content that peer holds shard sh, of size bytes:
// a challenge on a random chunk when the manifest has the shard's proof
// root and the peer can answer one, else the whole shard fetched and
// hashed (also when the peer predates challenges). nil means the peer
// proved it.
func CheckHolder(ctx context.Context, peer ShardPeer, sh Shard, size int64) error {
	if prover, ok := peer.(shardProver); ok && sh.Root != "" {
		chunk := rand.IntN(ProofChunks(size)) // unpredictable to the peer: the global source is seeded from the OS
		p, err := prover.Prove(ctx, sh.Hash, chunk)
		if err == nil {
			if err := VerifyProof(sh.Root, size, chunk, p); err != nil {
				return fmt.Errorf("shard %s: %w", sh.Hash, err)
			}
			return nil
		}
		if !errors.Is(err, errNoProofs) {
			return err
		}
	}
	data, err := peer.Get(ctx, sh.Hash)
	if err != nil {
		return err
	}
	if shardHash(data) != sh.Hash {
		return fmt.Errorf("shard %s: %w: bytes do not match", sh.Hash, ErrCorruptShard)
	}
	return nil
}

// proof answers a challenge from the shard on disk, verified against its
// hash first (a corrupt shard is quarantined and answered 410, as a GET).
func (h shardHandler) proof(w http.ResponseWriter, r *http.Request) {
	chunk, err := strconv.Atoi(r.URL.Query().Get("chunk"))
	if err != nil {
		http.Error(w, fmt.Sprintf("chunk=%q is not a chunk number", r.URL.Query().Get("chunk")), http.StatusBadRequest)
		return
	}
	data, err := h.store.Get(r.Context(), r.PathValue("hash"))
	if err != nil {
		writeShardError(w, err)
		return
	}
	p, err := BuildProof(data, chunk)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}

// Prove asks the peer to prove it holds the shard by sending chunk and its
// Merkle path. The answer is not checked here: VerifyProof does that
// against the manifest's root.
func (c *ShardClient) Prove(ctx context.Context, hash string, chunk int) (*ShardProof, error) {
	if err := CheckHash(hash); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Addr+"/v1/shards/"+hash+"/proof?chunk="+strconv.Itoa(chunk), nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set(TokenHeader, c.Token)
	}
	if cp := c.capability(OpGet, hash); cp != "" {
		req.Header.Set(CapabilityHeader, cp)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("proof of shard %s at %s: %w", hash, c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(string(msg), "404 page not found") {
			return nil, fmt.Errorf("proof of shard %s at %s: %w", hash, c.Addr, errNoProofs)
		}
		return nil, fmt.Errorf("proof of shard %s at %s: %w (HTTP %d: %s)", hash, c.Addr,
			statusSentinel(resp.StatusCode), resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	var p ShardProof
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxProofBody)).Decode(&p); err != nil {
		return nil, fmt.Errorf("proof of shard %s at %s: %w: %v", hash, c.Addr, ErrBadProof, err)
	}
	return &p, nil
}

// Prove answers a challenge from the local store.
func (p LocalPeer) Prove(ctx context.Context, hash string, chunk int) (*ShardProof, error) {
	data, err := p.Store.Get(ctx, hash)
	if err != nil {
		return nil, err
	}
	return BuildProof(data, chunk)
}
