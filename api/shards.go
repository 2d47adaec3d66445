package api

import (
	"context"
	"net/http"
)

// PlacedShardsRequest asks which of the shards a storage peer holds some
// manifest still places on it (POST /v1/storage/shards/placed).
type PlacedShardsRequest struct {
	Peer   string   `json:"peer"`
	Shards []string `json:"shards"`
}

// PlacedShardsResponse lists the asked shards still placed on the peer; the
// others are orphans it may delete.
type PlacedShardsResponse struct {
	Placed []string `json:"placed"`
}

// PlacedShards asks the grid (a consistent read, served by the leader)
// which of shards are still placed on peer.
func (c *Client) PlacedShards(ctx context.Context, peer string, shards []string) ([]string, error) {
	var resp PlacedShardsResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/storage/shards/placed", &PlacedShardsRequest{Peer: peer, Shards: shards}, &resp); err != nil {
		return nil, err
	}
	return resp.Placed, nil
}
