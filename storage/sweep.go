package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultSweepGrace is how old a shard file must be before a sweep may
// delete it: a put or repair writes shards before it commits the manifest
// that places them, so a young unplaced shard may be one in flight.
const DefaultSweepGrace = time.Hour

// DefaultSweepBatch is how many shard hashes one Placed call asks about.
const DefaultSweepBatch = 1000

// DefaultQuarantineKeep is how long a corrupt shard stays in quarantine, for
// an operator to look at, before a sweep deletes it: a volunteer's disk
// should not fill with rot.
const DefaultQuarantineKeep = 24 * time.Hour

// SweepOptions tunes ShardStore.Sweep.
type SweepOptions struct {
	// Placed returns which of hashes some manifest still places on this peer
	// (the ledger knows; storage does not). Any error stops the sweep before
	// it deletes anything. Required.
	Placed func(ctx context.Context, hashes []string) ([]string, error)
	// Grace protects shards written less than this long ago (default
	// DefaultSweepGrace); Batch bounds one Placed call (default
	// DefaultSweepBatch).
	Grace time.Duration
	Batch int
	// QuarantineKeep is how long a quarantined (corrupt) shard is kept
	// (default DefaultQuarantineKeep).
	QuarantineKeep time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// SweepResult is what one sweep did.
type SweepResult struct {
	Held    int   // shard files in the store
	Checked int   // older than the grace, so asked about
	Deleted int   // orphans removed
	Bytes   int64 // their size
	// Quarantined is how many quarantined shards older than QuarantineKeep
	// were deleted.
	Quarantined int
}

// Sweep deletes orphan shards: files older than the grace that no manifest
// places on this peer (a blob garbage-collected while the peer was down, a
// put or repair whose manifest was never committed, a shard repair moved
// away). It first asks Placed about every candidate, in batches; if any call
// fails it deletes nothing, so a shard a manifest places here is never lost
// because the ledger was unreachable or gave a partial answer. Just before
// deleting a file it checks again that the file is still older than the
// grace: a put that rewrote it meanwhile (install renames a fresh file into
// place) may be about to commit a manifest placing it.
func (s *ShardStore) Sweep(ctx context.Context, opts SweepOptions) (SweepResult, error) {
	var res SweepResult
	if opts.Placed == nil {
		return res, errors.New("sweep: no Placed function")
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultSweepGrace
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultSweepBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.QuarantineKeep <= 0 {
		opts.QuarantineKeep = DefaultQuarantineKeep
	}
	// Quarantine needs no ledger: it goes first, so it happens even when the
	// ledger cannot be asked.
	q, err := s.sweepQuarantine(opts.Now().Add(-opts.QuarantineKeep))
	res.Quarantined = q
	if err != nil {
		return res, err
	}
	cutoff := opts.Now().Add(-opts.Grace)
	hashes, err := s.List(ctx)
	if err != nil {
		return res, err
	}
	res.Held = len(hashes)
	var old []string
	for _, h := range hashes {
		if st, err := os.Stat(s.Path(h)); err == nil && st.Mode().IsRegular() && st.ModTime().Before(cutoff) {
			old = append(old, h)
		}
	}
	res.Checked = len(old)
	var orphans []string
	for i := 0; i < len(old); i += opts.Batch {
		batch := old[i:min(i+opts.Batch, len(old))]
		placed, err := opts.Placed(ctx, batch)
		if err != nil {
			return res, fmt.Errorf("sweep: asking which shards are placed here: %w", err)
		}
		keep := make(map[string]bool, len(placed))
		for _, h := range placed {
			keep[h] = true
		}
		for _, h := range batch {
			if !keep[h] {
				orphans = append(orphans, h)
			}
		}
	}
	for _, h := range orphans {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		st, err := os.Stat(s.Path(h))
		if errors.Is(err, fs.ErrNotExist) || err == nil && !st.ModTime().Before(cutoff) {
			continue // gone already, or rewritten since it was listed
		}
		if err != nil {
			return res, fmt.Errorf("sweep: %w", err)
		}
		if err := s.Delete(h); err != nil {
			return res, fmt.Errorf("sweep: %w", err)
		}
		res.Deleted++
		res.Bytes += st.Size()
	}
	return res, nil
}

// sweepQuarantine deletes quarantined shards quarantined before cutoff (a
// quarantined file's time is when it was quarantined).
func (s *ShardStore) sweepQuarantine(cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(s.quarantineDir())
	if err != nil {
		return 0, fmt.Errorf("sweep: quarantine: %w", err)
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(s.quarantineDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("sweep: quarantine: %w", err)
		}
		n++
	}
	return n, nil
}
