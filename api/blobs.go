package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/peergrid/peergrid/storage"
)

// BlobOptions tune how a large blob is erasure-coded.
type BlobOptions struct {
	K, M int // data and parity shards per segment (0: storage defaults)
	// AllowFewerParity stores a blob with fewer than K+M live storage peers,
	// leaving some parity unplaced until repair finds peers for it.
	AllowFewerParity bool
	// InlineThreshold: blobs this size or smaller go inline into the ledger
	// (0: storage.DefaultInlineThreshold).
	InlineThreshold int64
	// Pin keeps the blob until unpinned even if no job uses it (blob put
	// pins; blobs of jobs are kept while a job uses them).
	Pin bool
}

// StorageConfig is the cluster's default erasure coding.
func (c *Client) StorageConfig(ctx context.Context) (*StorageConfig, error) {
	var out StorageConfig
	return &out, c.doJSON(ctx, http.MethodGet, "/v1/storage/config", nil, &out)
}

// StoragePeers lists storage peers: live ones, or all known with all.
func (c *Client) StoragePeers(ctx context.Context, all bool) ([]StoragePeer, error) {
	var out []StoragePeer
	path := "/v1/storage/peers"
	if all {
		path += "?all=true"
	}
	return out, c.doJSON(ctx, http.MethodGet, path, nil, &out)
}

// Manifest returns where an erasure-coded blob's shards are (ErrNotFound for
// an inline blob or an unknown one).
func (c *Client) Manifest(ctx context.Context, hash string) (*storage.Manifest, error) {
	var raw []byte
	if err := c.do(ctx, http.MethodGet, "/v1/blobs/"+hash+"/manifest", nil, "", &raw); err != nil {
		return nil, err
	}
	return storage.DecodeManifest(raw)
}

// PutManifest commits a manifest whose shards are already placed.
func (c *Client) PutManifest(ctx context.Context, m *storage.Manifest, pin bool) error {
	b, err := storage.EncodeManifest(m)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, "/v1/blobs/"+m.Hash+"/manifest"+pinQuery(pin), bytes.NewReader(b), "application/json", nil)
}

func pinQuery(pin bool) string {
	if pin {
		return "?pin=true"
	}
	return ""
}

// Unpin lets garbage collection take a blob once no job uses it.
func (c *Client) Unpin(ctx context.Context, hash string) error {
	return c.do(ctx, http.MethodDelete, "/v1/blobs/"+hash+"/pin", nil, "", nil)
}

// PutBlobFrom stores size bytes from r as a blob and returns its hash. Small
// blobs go inline into the ledger; larger ones are erasure-coded by this
// client straight onto the storage peers, and only the manifest goes to the
// servers.
func (c *Client) PutBlobFrom(ctx context.Context, r io.Reader, size int64, opts BlobOptions) (string, *storage.Manifest, error) {
	threshold := opts.InlineThreshold
	if threshold <= 0 {
		threshold = storage.DefaultInlineThreshold
	}
	if opts.K == 0 && size > threshold {
		cfg, err := c.StorageConfig(ctx)
		if err != nil {
			return "", nil, fmt.Errorf("storage config: %w", err)
		}
		opts.K, opts.M = cfg.K, cfg.M
	}
	if size <= threshold {
		data, err := io.ReadAll(io.LimitReader(r, threshold+1))
		if err != nil {
			return "", nil, err
		}
		if opts.Pin {
			h := storage.Hash(data)
			return h, nil, c.do(ctx, http.MethodPut, "/v1/blobs/"+h+"?pin=true", bytes.NewReader(data), "application/octet-stream", nil)
		}
		h, err := c.upload(ctx, data)
		return h, nil, err
	}
	peers, err := c.StoragePeers(ctx, false)
	if err != nil {
		return "", nil, fmt.Errorf("list storage peers: %w", err)
	}
	refs := make([]storage.PeerRef, len(peers))
	for i, p := range peers {
		refs[i] = storage.PeerRef{ID: p.ID, Addr: p.Address}
	}
	m, err := storage.Put(ctx, r, storage.PutOptions{K: opts.K, M: opts.M, Peers: refs, Token: c.Token, AllowFewerParity: opts.AllowFewerParity})
	if err != nil {
		return "", nil, err
	}
	if err := c.PutManifest(ctx, m, opts.Pin); err != nil {
		return "", nil, fmt.Errorf("commit manifest of %s: %w", m.Hash, err)
	}
	return m.Hash, m, nil
}

// ReadBlob writes a blob's bytes to w: from the ledger if inline, else from
// the storage peers, decoding as soon as enough verified shards arrive. The
// faults it met (missing or corrupt shards) are returned with a nil error
// when the read still succeeded.
func (c *Client) ReadBlob(ctx context.Context, hash string, w io.Writer) ([]storage.ShardFault, error) {
	m, err := c.Manifest(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		data, err := c.GetBlob(ctx, hash)
		if err != nil {
			return nil, err
		}
		_, err = w.Write(data)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	peers, err := c.ShardPeers(ctx)
	if err != nil {
		return nil, err
	}
	faults, err := storage.Get(ctx, m, w, peers, storage.GetOptions{})
	c.reportFaults(ctx, hash, faults)
	return faults, err
}

// reportFaults tells the leader about missing or corrupt shards a read met,
// so it plans their repair. Best effort: a lost report only delays repair
// until the holder is seen down or another reader reports it.
func (c *Client) reportFaults(ctx context.Context, hash string, faults []storage.ShardFault) {
	var lost []storage.ShardLoc
	for _, f := range faults {
		if f.Kind == storage.FaultMissing || f.Kind == storage.FaultCorrupt {
			lost = append(lost, f.ShardLoc)
		}
	}
	if len(lost) > 0 {
		_ = c.doJSON(ctx, http.MethodPost, "/v1/blobs/"+hash+"/faults", FaultReport{Lost: lost}, nil)
	}
}

// ShardPeers returns a shard client for every known storage peer, by id.
func (c *Client) ShardPeers(ctx context.Context) (map[string]storage.ShardPeer, error) {
	peers, err := c.StoragePeers(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("list storage peers: %w", err)
	}
	out := make(map[string]storage.ShardPeer, len(peers))
	for _, p := range peers {
		out[p.ID] = storage.NewShardClient(p.Address, c.Token, nil)
	}
	return out, nil
}

// BlobStat is a blob's placement and the health of each shard.
type BlobStat struct {
	Hash     string        `json:"hash"`
	Size     int64         `json:"size"`
	Inline   bool          `json:"inline"`
	K        int           `json:"k"`
	M        int           `json:"m"`
	Segments []SegmentStat `json:"segments"`
}

// SegmentStat is one segment's shards.
type SegmentStat struct {
	Shards []ShardStat `json:"shards"`
}

// ShardStat is one shard: which peer holds it and whether it checked out.
type ShardStat struct {
	Index   int    `json:"index"`
	Peer    string `json:"peer"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
}

// StatBlob checks every shard of a blob on its peer.
func (c *Client) StatBlob(ctx context.Context, hash string) (*BlobStat, error) {
	m, err := c.Manifest(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		data, err := c.GetBlob(ctx, hash)
		if err != nil {
			return nil, err
		}
		return &BlobStat{Hash: hash, Size: int64(len(data)), Inline: true, Segments: []SegmentStat{}}, nil
	}
	if err != nil {
		return nil, err
	}
	peers, err := c.ShardPeers(ctx)
	if err != nil {
		return nil, err
	}
	st := &BlobStat{Hash: m.Hash, Size: m.Size, K: m.K, M: m.M, Segments: make([]SegmentStat, len(m.Segments))}
	for i := range st.Segments {
		st.Segments[i].Shards = []ShardStat{}
	}
	for _, h := range storage.Health(ctx, m, peers) {
		s := ShardStat{Index: h.Index, Peer: h.Peer, Healthy: h.Healthy}
		if h.Err != nil {
			s.Error = h.Err.Error()
		}
		st.Segments[h.Segment].Shards = append(st.Segments[h.Segment].Shards, s)
	}
	return st, nil
}
