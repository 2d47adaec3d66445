package storage

import (
	"context"
	"fmt"
	"sync"
)

// ShardHealth is one shard's placement and whether its holder has it.
type ShardHealth struct {
	ShardLoc
	Hash    string
	Peer    string // "" if unplaced
	Healthy bool
	Err     error // why not healthy; nil for an unplaced shard
}

// shardHolder is a peer that can say whether it holds a shard without
// sending it (ShardClient: HTTP HEAD).
type shardHolder interface {
	Has(ctx context.Context, hash string) (bool, error)
}

// Health asks each shard's holder whether it has the shard, a few at once,
// for `peergrid blob stat` and for the leader's repair planning. A peer that
// can answer without sending the bytes (ShardClient) is asked that way, which
// does not check the bytes; others are read and verified. A holder missing
// from peers is reported unhealthy. The result is in manifest order.
func Health(ctx context.Context, m *Manifest, peers map[string]ShardPeer) []ShardHealth {
	var out []ShardHealth
	for s, seg := range m.Segments {
		for i, sh := range seg.Shards {
			out = append(out, ShardHealth{ShardLoc: ShardLoc{s, i}, Hash: sh.Hash, Peer: sh.Peer})
		}
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for j := range out {
		h := &out[j]
		if h.Peer == "" {
			continue
		}
		peer := peers[h.Peer]
		if peer == nil {
			h.Err = errNoTransport(h.Peer)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h.Healthy, h.Err = shardHealthy(ctx, peer, h.Hash)
		})
	}
	wg.Wait()
	return out
}

func shardHealthy(ctx context.Context, peer ShardPeer, hash string) (bool, error) {
	if holder, ok := peer.(shardHolder); ok {
		ok, err := holder.Has(ctx, hash)
		if err == nil && !ok {
			err = ErrShardNotFound
		}
		return ok, err
	}
	data, err := peer.Get(ctx, hash)
	if err == nil && shardHash(data) != hash {
		err = fmt.Errorf("shard %s: %w: bytes do not match", hash, ErrCorruptShard)
	}
	return err == nil, err
}

type errNoTransport string

func (e errNoTransport) Error() string { return "peer " + string(e) + " is not live" }
