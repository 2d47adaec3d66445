package client

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
)

// Capabilities asks the grid for signed capabilities on storage peers (see
// api.CapabilityRequest): op "put" for an upload, "get" to read blob's
// shards without a certificate of the grid.
func (c *Client) Capabilities(ctx context.Context, op, blob string) ([]api.PeerCapability, error) {
	var resp api.CapabilityResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/storage/capabilities", &api.CapabilityRequest{Op: op, Blob: blob}, &resp); err != nil {
		return nil, fmt.Errorf("%s capabilities: %w", op, err)
	}
	return resp.Caps, nil
}

// capRefresh is how long before its expiry an upload asks for fresh put
// capabilities, so a long put outlives the first ones.
const capRefresh = 2 * time.Minute

// putGrant is put capabilities, one per peer the server places shards on,
// shared by a client's uploads for putGrantReuse and asked again during an
// upload when they near their expiry.
type putGrant struct {
	c *Client

	mu   sync.Mutex
	caps map[string]api.PeerCapability
	at   time.Time // when the grid granted them
}

// putGrantReuse is how long a client puts blobs with the put capabilities
// it was last granted (they name no blob) before asking again, so a worker
// storing many results asks once a minute, and a peer that joined is used
// within a minute.
const putGrantReuse = time.Minute

// putGrants keeps a client's last put grant.
type putGrants struct {
	mu   sync.Mutex
	last *putGrant
}

// grantPut returns put capabilities for an upload and the live storage
// peers it covers, to place shards on. The live peers are listed for every
// put, so none starts on peers since marked down; the client's last grant
// is reused while it is recent and covers every live peer, else the grid
// grants new ones.
func (c *Client) grantPut(ctx context.Context) (*putGrant, []storage.PeerRef, error) {
	live, err := c.StoragePeers(ctx, false)
	if err != nil {
		return nil, nil, fmt.Errorf("list storage peers: %w", err)
	}
	c.putGrants.mu.Lock()
	defer c.putGrants.mu.Unlock()
	if g := c.putGrants.last; g != nil && g.fresh() {
		if refs := g.covering(live); len(refs) == len(live) {
			return g, refs, nil
		}
	}
	g := &putGrant{c: c}
	if err := g.refresh(ctx); err != nil {
		return nil, nil, err
	}
	c.putGrants.last = g
	return g, g.covering(live), nil
}

// covering is the peers of live that g has a capability for.
func (g *putGrant) covering(live []api.StoragePeer) []storage.PeerRef {
	g.mu.Lock()
	defer g.mu.Unlock()
	refs := make([]storage.PeerRef, 0, len(live))
	for _, p := range live {
		if _, ok := g.caps[p.ID]; ok {
			refs = append(refs, storage.PeerRef{ID: p.ID, Addr: p.Address})
		}
	}
	return refs
}

// fresh says whether g was granted recently and none of its capabilities
// is near its expiry.
func (g *putGrant) fresh() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.at) > putGrantReuse {
		return false
	}
	for _, pc := range g.caps {
		if time.Until(pc.Expires) <= capRefresh {
			return false
		}
	}
	return true
}

func (g *putGrant) refresh(ctx context.Context) error {
	caps, err := g.c.Capabilities(ctx, storage.OpPut, "")
	if err != nil {
		return err
	}
	byPeer := make(map[string]api.PeerCapability, len(caps))
	for _, pc := range caps {
		byPeer[pc.Peer] = pc
	}
	g.caps, g.at = byPeer, time.Now()
	return nil
}

// token is peer's capability, fresh enough to use.
func (g *putGrant) token(ctx context.Context, peer string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if pc, ok := g.caps[peer]; ok && time.Until(pc.Expires) > capRefresh {
		return pc.Capability, nil
	}
	if err := g.refresh(ctx); err != nil {
		return "", err
	}
	pc, ok := g.caps[peer]
	if !ok {
		return "", fmt.Errorf("put capabilities: the grid no longer places shards on peer %s", peer)
	}
	return pc.Capability, nil
}

// grantedPeer is a storage peer an upload writes to with its grant.
type grantedPeer struct {
	g    *putGrant
	id   string
	addr string
	c    *Client
}

func (p grantedPeer) Put(ctx context.Context, hash string, data []byte) error {
	tok, err := p.g.token(ctx, p.id)
	if err != nil {
		return err
	}
	sc := p.c.shardClient(p.addr)
	sc.Caps = map[string]string{storage.OpPut: tok}
	return sc.Put(ctx, hash, data)
}

func (p grantedPeer) Get(ctx context.Context, hash string) ([]byte, error) {
	return p.c.shardClient(p.addr).Get(ctx, hash)
}

// shardClient speaks to the storage peer at addr. It sends no token: a
// hostile peer must not collect credentials, and peers obey capabilities
// (and a worker's certificate, for reads) only.
func (c *Client) shardClient(addr string) *storage.ShardClient {
	return storage.NewShardClient(addr, "", c.shardHTTP)
}

// readPeers is peers (or every storage peer, if nil) as a reader of blob
// needs them: a client that presents a certificate of the grid reads with
// it; one without asks for get capabilities on the peers holding the
// blob's shards.
func (c *Client) readPeers(ctx context.Context, blob string, peers map[string]storage.ShardPeer) (map[string]storage.ShardPeer, error) {
	if c.identified.Load() {
		if peers != nil {
			return peers, nil
		}
		return c.ShardPeers(ctx)
	}
	caps, err := c.Capabilities(ctx, storage.OpGet, blob)
	if err != nil {
		return nil, err
	}
	out := make(map[string]storage.ShardPeer, len(caps))
	for _, pc := range caps {
		if _, ok := out[pc.Peer]; !ok {
			out[pc.Peer] = c.shardClient(pc.Address)
		}
	}
	return WithCapabilities(out, caps), nil
}

// WithCapabilities gives the HTTP peers of peers (storage.ShardClient) the
// capabilities granted for them: each request carries the one that covers
// its op and shard (a peer may have several, each naming some of its
// shards; a put capability naming none covers all). Other peers are kept
// as they are.
func WithCapabilities(peers map[string]storage.ShardPeer, caps []api.PeerCapability) map[string]storage.ShardPeer {
	routes := map[string]capRoutes{}
	for _, pc := range caps {
		if routes[pc.Peer] == nil {
			routes[pc.Peer] = capRoutes{}
		}
		routes[pc.Peer].add(pc)
	}
	out := maps.Clone(peers)
	for id, r := range routes {
		sc, ok := out[id].(*storage.ShardClient)
		if !ok {
			continue
		}
		withCaps := *sc
		withCaps.CapFor = r.capFor
		out[id] = &withCaps
	}
	return out
}

// capRoutes maps "op/shard" (or "op/" for a capability naming no shard) to
// the capability to send.
type capRoutes map[string]string

func (r capRoutes) add(pc api.PeerCapability) {
	c, err := auth.PeekCapability(pc.Capability)
	if err != nil || len(c.Shards) == 0 {
		r[pc.Op+"/"] = pc.Capability // the peer will say what is wrong with it
		return
	}
	for _, h := range c.Shards {
		r[pc.Op+"/"+h] = pc.Capability
	}
}

func (r capRoutes) capFor(op, hash string) string {
	if cp := r[op+"/"+hash]; cp != "" {
		return cp
	}
	return r[op+"/"]
}
