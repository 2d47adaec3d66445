package api

import "time"

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

// CapabilityRequest asks the grid for capabilities on storage peers
// (POST /v1/storage/capabilities): to put a blob's shards (op "put": one
// capability for each peer the server places shards on, for any caller
// that may put blobs), or to read them (op "get": one for each peer holding
// the blob's shards, for a caller that may read the blob and holds no
// certificate of the grid).
type CapabilityRequest struct {
	Op   string `json:"op"`
	Blob string `json:"blob,omitempty"` // required for get; for put, if known
}

// PeerCapability is one signed capability (see auth.Capability) for one
// storage peer, sent to it in storage.CapabilityHeader.
type PeerCapability struct {
	Peer       string    `json:"peer"`
	Address    string    `json:"address,omitempty"`
	Op         string    `json:"op"`
	Capability string    `json:"capability"`
	Expires    time.Time `json:"expires"`
}

// CapabilityResponse lists the capabilities granted, one per peer.
type CapabilityResponse struct {
	Caps []PeerCapability `json:"caps"`
}
