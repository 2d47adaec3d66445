package api

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
