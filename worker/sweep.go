package worker

import (
	"context"
	"time"

	"github.com/peergrid/peergrid/storage"
)

// Sweep defaults: a first sweep soon after start, then every interval; a
// shard younger than the grace is never swept (see Config.SweepGrace).
const (
	defaultSweepDelay    = 2 * time.Minute
	defaultSweepInterval = 10 * time.Minute
)

// startSweep runs the orphan-shard sweep of a storage peer until ctx ends
// (the start of a drain). It counts on the leasing WaitGroup, so a drain
// waits for a sweep in progress to stop.
func (r *run) startSweep(ctx context.Context) {
	if r.w.shards == nil || r.w.cfg.SweepInterval < 0 {
		return
	}
	r.leasing.Add(1)
	go func() { defer r.leasing.Done(); r.w.sweepLoop(ctx) }()
}

func (w *Worker) sweepLoop(ctx context.Context) {
	delay, every := w.cfg.SweepDelay, w.cfg.SweepInterval
	if delay <= 0 {
		delay = defaultSweepDelay
	}
	if every <= 0 {
		every = defaultSweepInterval
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.sweep(ctx)
		t.Reset(every)
	}
}

// sweep deletes this peer's orphan shards: older than the grace and placed
// on it by no manifest the ledger holds. Asked shards the ledger still
// places here are kept, and if the ledger cannot be asked nothing is
// deleted (see storage.ShardStore.Sweep).
func (w *Worker) sweep(ctx context.Context) {
	res, err := w.shards.Sweep(ctx, storage.SweepOptions{
		Grace: w.cfg.SweepGrace,
		Placed: func(ctx context.Context, hashes []string) ([]string, error) {
			return w.client.PlacedShards(ctx, w.cfg.ID, hashes)
		},
	})
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("orphan shard sweep failed; nothing more deleted", "deleted", res.Deleted, "bytes", res.Bytes, "err", err)
	case res.Deleted > 0 || res.Quarantined > 0:
		w.log.Info("swept orphan shards", "deleted", res.Deleted, "bytes", res.Bytes, "checked", res.Checked, "held", res.Held,
			"quarantined_deleted", res.Quarantined)
	default:
		w.log.Debug("orphan shard sweep", "checked", res.Checked, "held", res.Held)
	}
}
