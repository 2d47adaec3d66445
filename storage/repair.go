package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// RepairOptions tunes a repair. The zero value is usable.
type RepairOptions struct {
	// HedgeDelay as in GetOptions.
	HedgeDelay time.Duration
	// UploadTimeout as in PutOptions.
	UploadTimeout time.Duration
	// Window is how many segments are repaired at once (default 2).
	Window int
}

// Repair rebuilds the lost shards of m and stores them on targets.
//
// For each segment with a lost shard it fetches any K of the segment's other
// shards, rebuilds the lost ones, checks each against its hash in the
// manifest, and uploads each to a target that holds no other shard of that
// segment (preferring the targets given fewest shards so far, so the load
// spreads). Shards found missing or corrupt while fetching are rebuilt too.
// targets are peer ids in the leader's order of preference, each with a
// transport in peers; the holder of a corrupt shard may be among them.
//
// It returns a new manifest with the placement updated, for the leader to
// commit; m is not changed. If some segments cannot be repaired the error
// says which (wrapping ErrUnavailable or ErrNotEnoughPeers) and the returned
// manifest, which is always valid, carries the repairs that did succeed.
func Repair(ctx context.Context, m *Manifest, lost []ShardLoc, targets []string, peers map[string]ShardPeer, opts RepairOptions) (*Manifest, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if opts.HedgeDelay == 0 {
		opts.HedgeDelay = DefaultHedgeDelay
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = DefaultUploadTimeout
	}
	if opts.Window <= 0 {
		opts.Window = 2
	}
	bySeg := map[int]map[int]bool{}
	for _, l := range lost {
		if l.Segment < 0 || l.Segment >= len(m.Segments) || l.Index < 0 || l.Index >= m.K+m.M {
			return nil, fmt.Errorf("repair blob %s: no %s", m.Hash, l)
		}
		if bySeg[l.Segment] == nil {
			bySeg[l.Segment] = map[int]bool{}
		}
		bySeg[l.Segment][l.Index] = true
	}
	r := &repairer{out: m.Clone(), peers: peers, targets: targets, load: map[string]int{}, opts: opts}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, opts.Window)
	for _, s := range sortedKeys(bySeg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r.repairSegment(ctx, s, bySeg[s]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return r.out, errors.Join(errs...)
}

// repairer rebuilds segments concurrently: each goroutine changes only its
// own segment of out; the load count is shared.
type repairer struct {
	out     *Manifest
	peers   map[string]ShardPeer
	targets []string
	opts    RepairOptions

	mu   sync.Mutex
	load map[string]int // shards given to each target so far
}

func (r *repairer) repairSegment(ctx context.Context, s int, lost map[int]bool) error {
	m := r.out
	shards, faults, err := fetchSegment(ctx, m, s, r.peers, r.opts.HedgeDelay, lost)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	for _, f := range faults {
		if f.Kind == FaultCorrupt || f.Kind == FaultMissing || f.Kind == FaultUnplaced {
			lost[f.Index] = true
		}
	}
	for i := range lost {
		shards[i] = nil
	}
	if err := rebuild(shards, m.K, m.M, false); err != nil {
		return fmt.Errorf("repair blob %s: segment %d: %w", m.Hash, s, err)
	}
	seg := &m.Segments[s]
	for _, i := range sortedKeys(lost) {
		if got := shardHash(shards[i]); got != seg.Shards[i].Hash {
			return fmt.Errorf("repair blob %s: segment %d: shard %d: %w: rebuilt bytes hash to %s", m.Hash, s, i, ErrHashMismatch, got)
		}
	}
	var errs []error
	for _, i := range sortedKeys(lost) {
		seg.Shards[i].Peer = "" // the old holder no longer counts
		if err := r.place(ctx, s, i, shards[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.validateSegment(s); err != nil {
		return fmt.Errorf("repair blob %s: segment %d: %w", m.Hash, s, err) // cannot happen: K placed shards were fetched
	}
	return errors.Join(errs...)
}

// place uploads shard i of segment s to the least-loaded target holding no
// other shard of the segment, trying the next one on failure.
func (r *repairer) place(ctx context.Context, s, i int, data []byte) error {
	seg := &r.out.Segments[s]
	var errs []error
	tried := map[string]bool{}
	for {
		peer := r.claim(seg, tried)
		if peer == "" {
			return fmt.Errorf("repair blob %s: segment %d: shard %d: %w: every target holds a shard of the segment or failed: %w",
				r.out.Hash, s, i, ErrNotEnoughPeers, errors.Join(errs...))
		}
		tried[peer] = true
		if err := putWithTimeout(ctx, r.peers[peer], seg.Shards[i].Hash, data, r.opts.UploadTimeout); err != nil {
			r.release(peer)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("peer %s: %w", peer, err))
			continue
		}
		seg.Shards[i].Peer = peer
		return nil
	}
}

func (r *repairer) release(peer string) {
	r.mu.Lock()
	r.load[peer]--
	r.mu.Unlock()
}

// claim picks the least-loaded target holding no shard of seg and not yet
// tried, and counts the shard against it.
func (r *repairer) claim(seg *Segment, tried map[string]bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	holds := map[string]bool{}
	for _, sh := range seg.Shards {
		holds[sh.Peer] = true
	}
	best := ""
	for _, t := range r.targets {
		if tried[t] || holds[t] || r.peers[t] == nil {
			continue
		}
		if best == "" || r.load[t] < r.load[best] {
			best = t
		}
	}
	if best != "" {
		r.load[best]++
	}
	return best
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
