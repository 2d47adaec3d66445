package client

import (
	"context"
	"net/http"

	"github.com/peergrid/peergrid/api"
)

// PlacedShards asks the grid (a consistent read, served by the leader)
// which of shards are still placed on peer.
func (c *Client) PlacedShards(ctx context.Context, peer string, shards []string) ([]string, error) {
	var resp api.PlacedShardsResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/storage/shards/placed", &api.PlacedShardsRequest{Peer: peer, Shards: shards}, &resp); err != nil {
		return nil, err
	}
	return resp.Placed, nil
}
