package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// BlobOptions tune how a large blob is erasure-coded.
type BlobOptions struct {
	K, M int // data and parity shards per segment (0: storage defaults)
	// AllowFewerParity stores a blob with fewer than K+M live storage peers,
	// leaving some parity unplaced until repair finds peers for it.
	AllowFewerParity bool
	// InlineThreshold: blobs this size or smaller go inline into the ledger
	// (0: the cluster's, from GET /v1/storage/config; a per-call override).
	InlineThreshold int64
	// Pin keeps the blob until unpinned even if no job uses it (blob put
	// pins; blobs of jobs are kept while a job uses them).
	Pin bool
}

// StorageConfig is the cluster's default erasure coding and inline
// threshold, as the server asked sees them.
func (c *Client) StorageConfig(ctx context.Context) (*api.StorageConfig, error) {
	var out api.StorageConfig
	return &out, c.doJSON(ctx, http.MethodGet, "/v1/storage/config", nil, &out)
}

// storageConfigTTL is how long a client trusts the cluster's storage config
// before asking again: it changes only when servers restart with new flags.
const storageConfigTTL = time.Minute

// storageConfigCache keeps the last storage config a client fetched.
type storageConfigCache struct {
	mu  sync.Mutex
	cfg api.StorageConfig
	at  time.Time
}

// ClusterStorage is api.StorageConfig cached for a minute, so a client storing
// many blobs (or a worker storing many results) asks once. A server that does
// not send an inline threshold means storage.DefaultInlineThreshold. When
// asking fails it returns the error with the last config it had (zero if
// none), which a caller may fall back on.
func (c *Client) ClusterStorage(ctx context.Context) (api.StorageConfig, error) {
	c.storage.mu.Lock()
	cfg, at := c.storage.cfg, c.storage.at
	c.storage.mu.Unlock()
	if !at.IsZero() && time.Since(at) < storageConfigTTL {
		return cfg, nil
	}
	got, err := c.StorageConfig(ctx)
	if err != nil {
		return cfg, err
	}
	if got.InlineThreshold <= 0 {
		got.InlineThreshold = storage.DefaultInlineThreshold
	}
	c.storage.mu.Lock()
	c.storage.cfg, c.storage.at = *got, time.Now()
	c.storage.mu.Unlock()
	return *got, nil
}

// ErrNotWasm is wrapped when a module file does not start with the
// WebAssembly header.
var ErrNotWasm = errors.New("not WebAssembly")

// wasmMagic is the first 8 bytes of every WebAssembly 1.0 binary.
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// CheckModuleFile refuses a module file that is not WebAssembly (by its
// header) or is over api.MaxModuleSize, naming the file.
func CheckModuleFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("module: %w", err)
	}
	if st.Size() > api.MaxModuleSize {
		return fmt.Errorf("module %s is %d bytes, over the %d MiB limit on modules", path, st.Size(), api.MaxModuleSize>>20)
	}
	head := make([]byte, len(wasmMagic))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("module %s: %w", path, err)
	}
	if !bytes.Equal(head[:n], wasmMagic) {
		return fmt.Errorf("module %s is %w: it starts with %q, not the WebAssembly header \\0asm version 1", path, ErrNotWasm, head[:n])
	}
	return nil
}

// StoragePeers lists storage peers: live ones, or all known with all.
func (c *Client) StoragePeers(ctx context.Context, all bool) ([]api.StoragePeer, error) {
	var out []api.StoragePeer
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
	if err := c.send(ctx, http.MethodGet, "/v1/blobs/"+hash+"/manifest", nil, "", &raw); err != nil {
		return nil, err
	}
	return storage.DecodeManifest(raw)
}

// PutManifest commits a manifest whose shards are already placed. A blob's
// committed manifest is write-once: putting it again, the same shards placed
// elsewhere, or the same size coded otherwise succeeds and keeps the
// committed one; a manifest of other content (another size, other shard
// hashes under the same coding) is refused with a *StatusError of code 409
// naming the first difference.
func (c *Client) PutManifest(ctx context.Context, m *storage.Manifest, pin bool) error {
	b, err := storage.EncodeManifest(m)
	if err != nil {
		return err
	}
	return c.send(ctx, http.MethodPut, "/v1/blobs/"+m.Hash+"/manifest"+pinQuery(pin), b, "application/json", nil)
}

// CommitRepair commits the manifest a repair made: the committed one with
// the shards the leader's repair order let this worker rebuild placed on
// their new peers. The leader refuses (HTTP 409) a repair it did not
// order, or one that changes anything but placement.
func (c *Client) CommitRepair(ctx context.Context, m *storage.Manifest) error {
	b, err := storage.EncodeManifest(m)
	if err != nil {
		return err
	}
	return c.send(ctx, http.MethodPut, "/v1/blobs/"+m.Hash+"/manifest?repair=true", b, "application/json", nil)
}

func pinQuery(pin bool) string {
	if pin {
		return "?pin=true"
	}
	return ""
}

// Unpin lets garbage collection take a blob once no job uses it.
func (c *Client) Unpin(ctx context.Context, hash string) error {
	return c.send(ctx, http.MethodDelete, "/v1/blobs/"+hash+"/pin", nil, "", nil)
}

// PutBlobFrom stores size bytes from r as a blob and returns its hash. Blobs
// at or under the inline threshold (opts.InlineThreshold, else the
// cluster's) go inline into the ledger; larger ones are erasure-coded by this
// client straight onto the storage peers, and only the manifest goes to the
// servers.
func (c *Client) PutBlobFrom(ctx context.Context, r io.Reader, size int64, opts BlobOptions) (string, *storage.Manifest, error) {
	threshold := opts.InlineThreshold
	if threshold <= 0 || opts.K == 0 && size > threshold {
		cfg, err := c.ClusterStorage(ctx)
		if err != nil {
			return "", nil, fmt.Errorf("storage config: %w", err)
		}
		if threshold <= 0 {
			threshold = cfg.InlineThreshold
		}
		if opts.K == 0 && size > threshold {
			opts.K, opts.M = cfg.K, cfg.M
		}
	}
	if size <= threshold {
		data, err := io.ReadAll(io.LimitReader(r, threshold+1))
		if err != nil {
			return "", nil, err
		}
		if opts.Pin {
			h := storage.Hash(data)
			return h, nil, c.send(ctx, http.MethodPut, "/v1/blobs/"+h+"?pin=true", data, "application/octet-stream", nil)
		}
		h, err := c.upload(ctx, data)
		return h, nil, err
	}
	grant, peers, err := c.grantPut(ctx)
	if err != nil {
		return "", nil, err
	}
	m, err := storage.Put(ctx, r, storage.PutOptions{K: opts.K, M: opts.M, Peers: peers, AllowFewerParity: opts.AllowFewerParity,
		Dial: func(p storage.PeerRef) storage.ShardPeer { return grantedPeer{g: grant, id: p.ID, addr: p.Addr, c: c} }})
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
	return c.ReadBlobVia(ctx, hash, w, nil)
}

// ReadBlobVia is ReadBlob with the storage peers' transports given (from
// ShardPeers), so a caller reading many blobs lists the peers once; nil
// peers are listed when a blob turns out to be erasure-coded. A client with
// no certificate of the grid (Identify) reads through get capabilities the
// grid grants it for this blob instead.
func (c *Client) ReadBlobVia(ctx context.Context, hash string, w io.Writer, peers map[string]storage.ShardPeer) ([]storage.ShardFault, error) {
	m, err := c.Manifest(ctx, hash)
	if errors.Is(err, ErrNotFound) { // inline, or unknown (GetBlob says which)
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
	if peers, err = c.readPeers(ctx, hash, peers); err != nil {
		return nil, err
	}
	return c.readCoded(ctx, m, w, peers)
}

func (c *Client) readCoded(ctx context.Context, m *storage.Manifest, w io.Writer, peers map[string]storage.ShardPeer) ([]storage.ShardFault, error) {
	faults, err := storage.Get(ctx, m, w, peers, storage.GetOptions{})
	c.reportFaults(ctx, m.Hash, faults)
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
		_ = c.doJSON(ctx, http.MethodPost, "/v1/blobs/"+hash+"/faults", api.FaultReport{Lost: lost}, nil)
	}
}

// ShardPeers returns a shard client for every known storage peer, by id,
// for a client that presents a certificate of the grid (a worker); others
// read through get capabilities (see ReadBlobVia).
func (c *Client) ShardPeers(ctx context.Context) (map[string]storage.ShardPeer, error) {
	peers, err := c.StoragePeers(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("list storage peers: %w", err)
	}
	out := make(map[string]storage.ShardPeer, len(peers))
	for _, p := range peers {
		out[p.ID] = c.shardClient(p.Address)
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
	peers, err := c.readPeers(ctx, hash, nil)
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
