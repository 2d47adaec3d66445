package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotEnoughPeers is wrapped when there are too few live storage peers to
// place every shard of a segment on a distinct peer.
var ErrNotEnoughPeers = errors.New("not enough live storage peers")

// PeerRef is a live storage peer as the leader lists it.
type PeerRef struct {
	ID   string
	Addr string
}

// PutOptions says how to code a blob and where its shards may go.
type PutOptions struct {
	K           int   // data shards per segment (default DefaultK)
	M           int   // parity shards per segment (default DefaultM)
	SegmentSize int64 // bytes per segment (default DefaultSegmentSize)
	// Peers are the live storage peers; each shard of a segment goes to a
	// distinct one, and segments rotate through them to spread the load.
	Peers []PeerRef
	// AllowFewerParity lets a put go ahead with at least K but fewer than
	// K+M peers. The blob is still coded with M parity shards, but the ones
	// that have no peer are recorded unplaced (Shard.Peer == ""); the manifest
	// says so (Redundancy() < M, Unplaced()) and Repair places them when
	// peers appear.
	AllowFewerParity bool
	// Token is the cluster token for the default HTTP transport.
	Token string
	// Dial returns the transport to a peer; nil means an HTTP ShardClient to
	// PeerRef.Addr with Token.
	Dial func(PeerRef) ShardPeer
	// Window is how many segments are coded and uploaded at once (default 2;
	// 3 and 4 measured no faster, even to peers on disk). Memory is about
	// Window * SegmentSize * (K+M)/K.
	Window int
	// UploadTimeout bounds one shard upload; a peer that takes longer is
	// treated as failed and a spare is tried (default DefaultUploadTimeout).
	UploadTimeout time.Duration
}

// DefaultUploadTimeout bounds one shard upload in Put and Repair.
const DefaultUploadTimeout = 30 * time.Second

func (o PutOptions) withDefaults() (PutOptions, error) {
	if o.K == 0 && o.M == 0 {
		o.K, o.M = DefaultK, DefaultM
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Window <= 0 {
		o.Window = 2
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = DefaultUploadTimeout
	}
	if o.K < 1 || o.M < 0 || o.K+o.M > MaxShards {
		return o, fmt.Errorf("put: k=%d m=%d, want k>=1, m>=0, k+m<=%d", o.K, o.M, MaxShards)
	}
	if o.SegmentSize < int64(o.K) || o.SegmentSize > MaxSegmentSize {
		return o, fmt.Errorf("put: segment size %d out of range %d..%d", o.SegmentSize, o.K, MaxSegmentSize)
	}
	if o.Dial == nil {
		hc := &http.Client{}
		o.Dial = func(p PeerRef) ShardPeer { return NewShardClient(p.Addr, o.Token, hc) }
	}
	return o, nil
}

// Put reads a blob from r segment by segment, codes each segment into K+M
// shards, uploads the shards of a segment in parallel to distinct peers and
// returns the manifest for the leader to commit. It holds at most Window
// segments in memory whatever the blob's size, and hashes the blob as it
// streams. An upload that fails moves to a spare peer (one holding no shard of
// that segment) and the failed peer is not used again by this put.
func Put(ctx context.Context, r io.Reader, opts PutOptions) (*Manifest, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := newPutter(opts)
	if err != nil {
		return nil, err
	}
	return p.run(ctx, r)
}

type putter struct {
	opts  PutOptions
	peers []PeerRef
	conns map[string]ShardPeer
	start int // rotation offset, so blobs do not all start on one peer

	mu   sync.Mutex
	dead map[string]bool
	segs []Segment
}

func newPutter(opts PutOptions) (*putter, error) {
	p := &putter{opts: opts, conns: map[string]ShardPeer{}, dead: map[string]bool{}}
	for _, ref := range opts.Peers {
		if err := checkPeerID(ref.ID); err != nil || ref.ID == "" {
			return nil, fmt.Errorf("put: peer %q: bad id", ref.ID)
		}
		if _, dup := p.conns[ref.ID]; dup {
			continue
		}
		p.conns[ref.ID] = opts.Dial(ref)
		p.peers = append(p.peers, ref)
	}
	if err := p.checkPeerCount(len(p.peers)); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	if len(p.peers) > 0 {
		p.start = rand.IntN(len(p.peers))
	}
	return p, nil
}

func (p *putter) checkPeerCount(live int) error {
	k, m := p.opts.K, p.opts.M
	if live < k || (live < k+m && !p.opts.AllowFewerParity) {
		return fmt.Errorf("%w: %d live, need k+m=%d to give each shard of a segment its own peer (at least k=%d with AllowFewerParity)",
			ErrNotEnoughPeers, live, k+m, k)
	}
	return nil
}

func (p *putter) run(ctx context.Context, r io.Reader) (*Manifest, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	o := p.opts
	bufSize := int(shardSize(o.SegmentSize, o.K)) * (o.K + o.M)
	bufs := make(chan []byte, o.Window)
	for range o.Window {
		bufs <- nil // allocated on first use
	}
	// The blob's SHA-256 is one sequential pass that nothing else can share,
	// so it runs on its own goroutine, in segment order, while the segments
	// are coded, their shards hashed and uploaded. A segment's buffer goes
	// back to the pool once both the hasher and the uploader are done with it
	// (neither writes buf[:n]: coding only adds padding and parity after it).
	type hashJob struct {
		data    []byte
		release func()
	}
	toHash := make(chan hashJob, o.Window)
	blob := sha256.New()
	var hashed sync.WaitGroup
	hashed.Go(func() {
		for j := range toHash {
			blob.Write(j.data)
			j.release()
		}
	})
	var size int64
	var wg sync.WaitGroup
	for s := 0; ; s++ {
		var buf []byte
		select {
		case buf = <-bufs:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if buf == nil {
			buf = make([]byte, bufSize)
		}
		n, err := io.ReadFull(r, buf[:o.SegmentSize])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			cancel(fmt.Errorf("put: reading the blob at byte %d: %w", size, err))
			bufs <- buf
			break
		}
		if n == 0 {
			bufs <- buf
			break
		}
		size += int64(n)
		p.mu.Lock()
		p.segs = append(p.segs, Segment{})
		p.mu.Unlock()
		var users atomic.Int32
		users.Store(2)
		release := func() {
			if users.Add(-1) == 0 {
				bufs <- buf
			}
		}
		toHash <- hashJob{buf[:n], release}
		wg.Go(func() {
			defer release()
			if err := p.putSegment(ctx, s, buf, n); err != nil {
				cancel(err)
			}
		})
		if n < int(o.SegmentSize) {
			break
		}
	}
	close(toHash)
	wg.Wait()
	hashed.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return p.manifest(blob, size)
}

func (p *putter) manifest(blob hash.Hash, size int64) (*Manifest, error) {
	m := &Manifest{
		Version: ManifestVersion, Hash: hex.EncodeToString(blob.Sum(nil)), Size: size,
		SegmentSize: p.opts.SegmentSize, K: p.opts.K, M: p.opts.M, Segments: p.segs,
	}
	if m.Segments == nil {
		m.Segments = []Segment{}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	return m, nil
}

// putSegment codes segment s (buf[:n]) and uploads its shards.
func (p *putter) putSegment(ctx context.Context, s int, buf []byte, n int) error {
	k, m := p.opts.K, p.opts.M
	shards, err := splitSegment(buf, n, k, m)
	if err != nil {
		return fmt.Errorf("put: segment %d: %w", s, err)
	}
	seg := Segment{Shards: make([]Shard, k+m)}
	pl, err := p.place(s)
	if err != nil {
		return fmt.Errorf("put: segment %d: %w", s, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, k+m)
	for i := range shards {
		wg.Go(func() {
			seg.Shards[i].Hash = shardHash(shards[i])
			seg.Shards[i].Root = ProofRoot(shards[i])
			if pl.primary[i] != "" {
				seg.Shards[i].Peer, errs[i] = p.upload(ctx, pl, seg.Shards[i].Hash, shards[i], pl.primary[i])
			}
		})
	}
	wg.Wait()
	if err := p.checkSegment(s, seg, errs); err != nil {
		return err
	}
	seg.Hash = SegmentHash(k, int64(n), seg.Shards)
	p.mu.Lock()
	p.segs[s] = seg
	p.mu.Unlock()
	return nil
}

// checkSegment accepts a segment whose failed uploads still leave every shard
// placed, or, with AllowFewerParity, at least K.
func (p *putter) checkSegment(s int, seg Segment, errs []error) error {
	placed := 0
	for _, sh := range seg.Shards {
		if sh.Peer != "" {
			placed++
		}
	}
	if placed == len(seg.Shards) || (p.opts.AllowFewerParity && placed >= p.opts.K) {
		return nil
	}
	return fmt.Errorf("put: segment %d: %w: only %d of %d shards stored: %w",
		s, ErrNotEnoughPeers, placed, len(seg.Shards), errors.Join(errs...))
}

// placement is where one segment's shards go: a first choice per shard and
// the spare peers to move to when an upload fails.
type placement struct {
	primary []string // peer id per shard; "" leaves the shard unplaced
	mu      sync.Mutex
	spares  []string
}

// place rotates through the live peers: segment s starts where segment s-1
// stopped, so every peer gets about the same number of shards.
func (p *putter) place(s int) (*placement, error) {
	p.mu.Lock()
	var live []string
	for _, ref := range p.peers {
		if !p.dead[ref.ID] {
			live = append(live, ref.ID)
		}
	}
	p.mu.Unlock()
	if err := p.checkPeerCount(len(live)); err != nil {
		return nil, err
	}
	total := p.opts.K + p.opts.M
	pl := &placement{primary: make([]string, total)}
	first := p.start + s*total
	for j := range live {
		id := live[(first+j)%len(live)]
		if j < total {
			pl.primary[j] = id
		} else {
			pl.spares = append(pl.spares, id)
		}
	}
	return pl, nil
}

func (pl *placement) spare() string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.spares) == 0 {
		return ""
	}
	id := pl.spares[0]
	pl.spares = pl.spares[1:]
	return id
}

// upload stores one shard on peer, moving to spare peers while uploads fail.
// It returns the peer that took the shard.
func (p *putter) upload(ctx context.Context, pl *placement, hash string, data []byte, peer string) (string, error) {
	var errs []error
	for peer != "" {
		err := putWithTimeout(ctx, p.conns[peer], hash, data, p.opts.UploadTimeout)
		if err == nil {
			return peer, nil
		}
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		errs = append(errs, fmt.Errorf("peer %s: %w", peer, err))
		p.mu.Lock()
		p.dead[peer] = true
		p.mu.Unlock()
		peer = pl.spare()
	}
	return "", errors.Join(errs...)
}

func putWithTimeout(ctx context.Context, peer ShardPeer, hash string, data []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return peer.Put(ctx, hash, data)
}
