package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/peergrid/peergrid/storage"
)

// ErrDown is returned by a MemPeer that is down.
var ErrDown = errors.New("peer down")

// MemPeer is an in-memory storage.ShardPeer whose failures a test controls.
// It does not verify hashes on Get, so a corrupted shard reaches the reader.
type MemPeer struct {
	mu     sync.Mutex
	shards map[string][]byte
	down   bool
	stall  bool
	gets   int
}

var _ storage.ShardPeer = (*MemPeer)(nil)

// NewMemPeer returns an empty, healthy peer.
func NewMemPeer() *MemPeer { return &MemPeer{shards: map[string][]byte{}} }

// SetDown makes every call fail with ErrDown (or work again).
func (p *MemPeer) SetDown(down bool) { p.mu.Lock(); p.down = down; p.mu.Unlock() }

// SetStalled makes Get and Put block until their context ends, as a hung peer would.
func (p *MemPeer) SetStalled(stall bool) { p.mu.Lock(); p.stall = stall; p.mu.Unlock() }

// Gets is how many Get calls the peer has served or refused.
func (p *MemPeer) Gets() int { p.mu.Lock(); defer p.mu.Unlock(); return p.gets }

// Len is how many shards the peer holds.
func (p *MemPeer) Len() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.shards) }

// Put stores a copy of data, refusing bytes that do not match hash.
func (p *MemPeer) Put(ctx context.Context, hash string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return ErrDown
	}
	if p.stall {
		p.mu.Unlock()
		<-ctx.Done()
		p.mu.Lock()
		return ctx.Err()
	}
	if err := storage.Verify(hash, data); err != nil {
		return err
	}
	p.shards[hash] = append([]byte{}, data...)
	return nil
}

// Get returns the stored bytes as they are, corrupt or not.
func (p *MemPeer) Get(ctx context.Context, hash string) ([]byte, error) {
	p.mu.Lock()
	p.gets++
	down, stall := p.down, p.stall
	data, ok := p.shards[hash]
	p.mu.Unlock()
	switch {
	case down:
		return nil, ErrDown
	case stall:
		<-ctx.Done()
		return nil, ctx.Err()
	case !ok:
		return nil, fmt.Errorf("shard %s: %w", hash, storage.ErrShardNotFound)
	}
	return append([]byte{}, data...), nil
}

// Corrupt flips a byte of a held shard (or empties it if it is empty already).
func (p *MemPeer) Corrupt(hash string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.shards[hash]; len(d) > 0 {
		d[len(d)/2] ^= 0xff
	} else if d != nil {
		p.shards[hash] = []byte{0}
	}
}

// Drop forgets a shard.
func (p *MemPeer) Drop(hash string) { p.mu.Lock(); delete(p.shards, hash); p.mu.Unlock() }

// MemPeers returns n healthy peers named p0, p1, ... with their refs and a
// transport map for Get and Repair.
func MemPeers(n int) ([]*MemPeer, []storage.PeerRef, map[string]storage.ShardPeer) {
	var ps []*MemPeer
	var refs []storage.PeerRef
	conns := map[string]storage.ShardPeer{}
	for i := range n {
		p := NewMemPeer()
		id := fmt.Sprintf("p%d", i)
		ps = append(ps, p)
		refs = append(refs, storage.PeerRef{ID: id})
		conns[id] = p
	}
	return ps, refs, conns
}

// DialMap is a PutOptions.Dial that looks peers up in conns.
func DialMap(conns map[string]storage.ShardPeer) func(storage.PeerRef) storage.ShardPeer {
	return func(r storage.PeerRef) storage.ShardPeer { return conns[r.ID] }
}
