package storage

import (
	"context"
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
// sending it (ShardClient: HTTP HEAD). Its word is not proof: Health does
// not use it (see CheckHolder).
type shardHolder interface {
	Has(ctx context.Context, hash string) (bool, error)
}

// Health checks each shard's holder by content, a few at once, for
// `peergrid blob stat` and the dashboard: the holder must prove it has the
// shard (CheckHolder: a challenge on a random chunk checked against the
// manifest's proof root, or, for a manifest without roots or a peer that
// cannot answer one, the whole shard fetched and hashed). A peer that only
// says it has the shard (HEAD) proves nothing. A holder missing from peers
// is reported unhealthy. The result is in manifest order.
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
			h.Err = CheckHolder(ctx, peer, m.Segments[h.Segment].Shards[h.Index], m.ShardSize(h.Segment))
			h.Healthy = h.Err == nil
		})
	}
	wg.Wait()
	return out
}

type errNoTransport string

func (e errNoTransport) Error() string { return "peer " + string(e) + " is not live" }
