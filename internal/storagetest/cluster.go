// Package storagetest runs storage peers on loopback for tests: each peer a
// real ShardStore in a temp dir behind a real HTTP server, which a test can
// kill, bring back and corrupt.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/peergrid/peergrid/storage"
)

// Token is the cluster token every harness peer requires.
const Token = "storagetest-token"

// Peer is one storage peer of a Cluster.
type Peer struct {
	ID    string
	Store *storage.ShardStore
	addr  string
	srv   *http.Server
}

// Addr is the peer's host:port (kept across Kill and Revive).
func (p *Peer) Addr() string { return p.addr }

// Up reports whether the peer's server is running.
func (p *Peer) Up() bool { return p.srv != nil }

// Cluster is a set of storage peers on loopback. Its methods are not safe for
// concurrent use; call them from the test goroutine.
type Cluster struct {
	t     testing.TB
	Peers []*Peer
	HTTP  *http.Client
}

// NewCluster starts n storage peers (ids p0, p1, ...), each with its store in
// a temp dir, and stops them when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	return NewClusterIn(t, n, "")
}

// NewClusterIn is NewCluster with the stores under root (e.g. /dev/shm, to
// measure without disk latency); "" means the test's temp dir.
func NewClusterIn(t testing.TB, n int, root string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	for i := range n {
		dir := t.TempDir()
		if root != "" {
			var err error
			if dir, err = os.MkdirTemp(root, "storagetest-"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		store, err := storage.OpenShardStore(dir, storage.ShardStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := &Peer{ID: fmt.Sprintf("p%d", i), Store: store}
		c.Peers = append(c.Peers, p)
		c.start(p, "127.0.0.1:0")
	}
	t.Cleanup(func() {
		for i := range c.Peers {
			c.Kill(i)
		}
		c.HTTP.CloseIdleConnections()
	})
	return c
}

func (c *Cluster) start(p *Peer, addr string) {
	c.t.Helper()
	ln, err := listen(addr)
	if err != nil {
		c.t.Fatalf("peer %s: %v", p.ID, err)
	}
	p.addr = ln.Addr().String()
	p.srv = &http.Server{Handler: storage.NewShardHandler(p.Store, storage.TokenAuth(Token)), ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(p.srv)
}

// listen binds addr, retrying for a while: a port just closed may linger.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill stops peer i's server and closes its connections; its disk stays.
func (c *Cluster) Kill(i int) {
	p := c.Peers[i]
	if p.srv == nil {
		return
	}
	_ = p.srv.Close()
	p.srv = nil
	c.HTTP.CloseIdleConnections()
}

// Revive restarts peer i's server on its old address with its old disk.
func (c *Cluster) Revive(i int) {
	c.t.Helper()
	if p := c.Peers[i]; p.srv == nil {
		c.start(p, p.addr)
	}
}

// Refs lists the peers that are up, as the leader would give them to a put.
func (c *Cluster) Refs() []storage.PeerRef {
	var refs []storage.PeerRef
	for _, p := range c.Peers {
		if p.Up() {
			refs = append(refs, storage.PeerRef{ID: p.ID, Addr: p.addr})
		}
	}
	return refs
}

// IDs lists the ids of the peers that are up.
func (c *Cluster) IDs() []string {
	var ids []string
	for _, r := range c.Refs() {
		ids = append(ids, r.ID)
	}
	return ids
}

// Clients maps every peer id, up or not, to an HTTP client for it: a reader
// that does not know a peer is down finds out by trying.
func (c *Cluster) Clients() map[string]storage.ShardPeer {
	out := map[string]storage.ShardPeer{}
	for _, p := range c.Peers {
		out[p.ID] = storage.NewShardClient(p.addr, Token, c.HTTP)
	}
	return out
}

// Dial is a PutOptions.Dial using the cluster's HTTP client.
func (c *Cluster) Dial(ref storage.PeerRef) storage.ShardPeer {
	return storage.NewShardClient(ref.Addr, Token, c.HTTP)
}

// Put stores r's bytes across the peers that are up with k data and m parity shards.
func (c *Cluster) Put(ctx context.Context, data []byte, k, m int, segSize int64) (*storage.Manifest, error) {
	return storage.Put(ctx, bytesReader(data), storage.PutOptions{K: k, M: m, SegmentSize: segSize, Peers: c.Refs(), Dial: c.Dial})
}

// Peer returns the peer with the given id.
func (c *Cluster) Peer(id string) *Peer {
	for _, p := range c.Peers {
		if p.ID == id {
			return p
		}
	}
	c.t.Fatalf("no peer %s", id)
	return nil
}

// Index returns the position of the peer with the given id.
func (c *Cluster) Index(id string) int {
	for i, p := range c.Peers {
		if p.ID == id {
			return i
		}
	}
	c.t.Fatalf("no peer %s", id)
	return -1
}

// Corrupt flips a byte of the shard on the peer's disk.
func (c *Cluster) Corrupt(peerID, hash string) {
	c.t.Helper()
	path := c.Peer(peerID).Store.Path(hash)
	data, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatalf("corrupt shard %s on %s: %v", hash, peerID, err)
	}
	if len(data) == 0 {
		data = []byte{1}
	} else {
		data[len(data)/2] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// Holds reports whether the peer's disk has a healthy copy of the shard.
func (c *Cluster) Holds(peerID, hash string) bool {
	data, err := os.ReadFile(c.Peer(peerID).Store.Path(hash))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	return err == nil && storage.Hash(data) == hash
}
