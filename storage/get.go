package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is wrapped when fewer than K verified shards of a segment
// can be had: the blob cannot be read until holders return or it is repaired.
var ErrUnavailable = errors.New("blob unavailable")

// DefaultHedgeDelay is how long a read waits on its first K shard requests
// before asking one more peer.
const DefaultHedgeDelay = 300 * time.Millisecond

// FaultKind says why a shard could not be used.
type FaultKind string

// Fault kinds, from the reader's point of view.
const (
	FaultUnplaced    FaultKind = "unplaced"    // no peer holds it (manifest)
	FaultNoPeer      FaultKind = "no_peer"     // its holder is not among the live peers given
	FaultUnreachable FaultKind = "unreachable" // the holder did not answer
	FaultMissing     FaultKind = "missing"     // the holder does not have it
	FaultCorrupt     FaultKind = "corrupt"     // the bytes do not match the hash
)

// ShardFault is one shard a read or repair could not use. The leader plans
// repair from these: a missing or corrupt shard needs rebuilding whatever its
// holder's health.
type ShardFault struct {
	ShardLoc
	Hash string
	Peer string
	Kind FaultKind
	Err  error
}

func (f ShardFault) String() string {
	peer := f.Peer
	if peer == "" {
		peer = "none"
	}
	return fmt.Sprintf("shard %d (peer %s: %s)", f.Index, peer, f.Kind)
}

// GetOptions tunes a read. The zero value is usable.
type GetOptions struct {
	// HedgeDelay is how long to wait on outstanding shard requests before
	// asking one more peer (default DefaultHedgeDelay; negative: ask every
	// holder at once).
	HedgeDelay time.Duration
	// Window is how many segments are fetched at once (default 2).
	Window int
	// OnFault, if set, is called (from the reading goroutine) for each shard
	// fault as it is found.
	OnFault func(ShardFault)
}

func (o GetOptions) withDefaults() GetOptions {
	if o.HedgeDelay == 0 {
		o.HedgeDelay = DefaultHedgeDelay
	}
	if o.Window <= 0 {
		o.Window = 2
	}
	return o
}

// Get writes the blob m describes to w, segment by segment, fetching each
// segment's shards from several peers at once (peers maps a peer id to its
// transport; a holder not in it counts as down). It decodes a segment as soon
// as K verified shards have arrived and cancels the other requests. It
// returns every shard fault it met, even on success, so the caller can report
// them for repair. With fewer than K usable shards of a segment the error
// wraps ErrUnavailable and names the blob, the segment and the missing shards.
// The blob's hash is checked at the end; on any error, what was written to w
// must be discarded.
func Get(ctx context.Context, m *Manifest, w io.Writer, peers map[string]ShardPeer, opts GetOptions) ([]ShardFault, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	type result struct {
		shards [][]byte
		faults []ShardFault
		err    error
	}
	order := make(chan chan result, opts.Window-1)
	wg.Go(func() {
		defer close(order)
		for s := range m.Segments {
			ch := make(chan result, 1)
			select {
			case order <- ch:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				shards, faults, err := readSegment(ctx, m, s, peers, opts.HedgeDelay)
				ch <- result{shards, faults, err}
			})
		}
	})

	var faults []ShardFault
	blob := sha256.New()
	s := 0
	for ch := range order {
		res := <-ch
		faults = append(faults, res.faults...)
		if opts.OnFault != nil {
			for _, f := range res.faults {
				opts.OnFault(f)
			}
		}
		err := res.err
		if err == nil {
			err = writeSegment(m, s, res.shards, io.MultiWriter(w, blob))
		}
		if err != nil {
			cancel()
			for ch := range order {
				<-ch
			}
			return faults, err
		}
		s++
	}
	if err := ctx.Err(); err != nil {
		return faults, err
	}
	if got := hex.EncodeToString(blob.Sum(nil)); got != m.Hash {
		return faults, fmt.Errorf("blob %s: %w: read bytes hash to %s", m.Hash, ErrHashMismatch, got)
	}
	return faults, nil
}

// readSegment fetches K verified shards of segment s and decodes its data
// shards. It runs for several segments at once. There is no per-segment hash
// of the bytes to check (see SegmentHash): each shard was checked against its
// hash, and Get checks the blob's hash at the end.
func readSegment(ctx context.Context, m *Manifest, s int, peers map[string]ShardPeer, hedge time.Duration) ([][]byte, []ShardFault, error) {
	shards, faults, err := fetchSegment(ctx, m, s, peers, hedge, nil)
	if err != nil {
		return nil, faults, err
	}
	if err := rebuild(shards, m.K, m.M, true); err != nil {
		return nil, faults, fmt.Errorf("blob %s: segment %d: %w", m.Hash, s, err)
	}
	return shards, faults, nil
}

// writeSegment writes the bytes of segment s from its decoded data shards.
func writeSegment(m *Manifest, s int, shards [][]byte, w io.Writer) error {
	left := m.SegmentLen(s)
	for _, sh := range shards[:m.K] {
		part := sh[:min(int64(len(sh)), left)]
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("blob %s: writing segment %d: %w", m.Hash, s, err)
		}
		left -= int64(len(part))
	}
	return nil
}

// verifyingPeer marks a ShardPeer whose Get already checks the bytes against
// the hash, so a reader need not hash them twice.
type verifyingPeer interface{ verifiesShards() }

type shardReply struct {
	index int
	data  []byte
	err   error
}

// fetchSegment gathers K verified shards of segment s, skipping the indexes in
// skip. It asks K holders at once (data shards first, so that no decoding is
// needed when all answer), asks one more whenever a request fails or the
// hedge delay passes with no answer, and cancels the rest once it has K.
// The result has K+M entries, nil where a shard was not fetched.
func fetchSegment(ctx context.Context, m *Manifest, s int, peers map[string]ShardPeer, hedge time.Duration, skip map[int]bool) ([][]byte, []ShardFault, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	seg := m.Segments[s]
	shards := make([][]byte, len(seg.Shards))
	var faults []ShardFault
	var queue []int
	for i, sh := range seg.Shards {
		switch {
		case skip[i]:
		case sh.Peer == "":
			faults = append(faults, ShardFault{ShardLoc{s, i}, sh.Hash, "", FaultUnplaced, nil})
		case peers[sh.Peer] == nil:
			faults = append(faults, ShardFault{ShardLoc{s, i}, sh.Hash, sh.Peer, FaultNoPeer, nil})
		default:
			queue = append(queue, i)
		}
	}
	replies := make(chan shardReply, len(seg.Shards))
	launch := func() bool {
		if len(queue) == 0 {
			return false
		}
		i := queue[0]
		queue = queue[1:]
		wg.Go(func() {
			peer := peers[seg.Shards[i].Peer]
			data, err := peer.Get(ctx, seg.Shards[i].Hash)
			if _, trusted := peer.(verifyingPeer); err == nil && !trusted && shardHash(data) != seg.Shards[i].Hash {
				err = fmt.Errorf("%w: peer sent bytes that do not match", ErrCorruptShard)
			}
			replies <- shardReply{i, data, err}
		})
		return true
	}
	pending := 0
	for range m.K {
		if launch() {
			pending++
		}
	}
	timer := time.NewTimer(hedgeOrNever(hedge))
	defer timer.Stop()
	got := 0
	for got < m.K {
		if pending == 0 {
			return nil, faults, unavailable(m, s, got, faults)
		}
		select {
		case r := <-replies:
			pending--
			if r.err != nil {
				if ctx.Err() != nil {
					return nil, faults, ctx.Err()
				}
				sh := seg.Shards[r.index]
				faults = append(faults, ShardFault{ShardLoc{s, r.index}, sh.Hash, sh.Peer, faultKind(r.err), r.err})
				if launch() {
					pending++
				}
				continue
			}
			shards[r.index] = r.data
			got++
		case <-timer.C:
			if launch() {
				pending++
			}
			timer.Reset(hedgeOrNever(hedge))
		case <-ctx.Done():
			return nil, faults, ctx.Err()
		}
	}
	return shards, faults, nil
}

func hedgeOrNever(d time.Duration) time.Duration {
	if d < 0 {
		return time.Nanosecond
	}
	return d
}

func faultKind(err error) FaultKind {
	switch {
	case errors.Is(err, ErrCorruptShard), errors.Is(err, ErrHashMismatch):
		return FaultCorrupt
	case errors.Is(err, ErrShardNotFound):
		return FaultMissing
	}
	return FaultUnreachable
}

// unavailable names the blob, the segment and each shard that could not be used.
func unavailable(m *Manifest, s, got int, faults []ShardFault) error {
	var mine []string
	sort.Slice(faults, func(a, b int) bool { return faults[a].Index < faults[b].Index })
	for _, f := range faults {
		if f.Segment == s {
			mine = append(mine, f.String())
		}
	}
	return fmt.Errorf("%w: blob %s: segment %d: %d of %d shards usable, need k=%d; missing: %s",
		ErrUnavailable, m.Hash, s, got, m.K+m.M, m.K, strings.Join(mine, ", "))
}
