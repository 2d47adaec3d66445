package worker

import (
	"bytes"
	"context"
	"errors"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
)

// storeLargeStdout pushes a stdout over the cluster's inline threshold to
// the storage peers and reports its manifest instead of the bytes, so large
// results never funnel through the leader. With too few storage peers it
// stays inline (the server still bounds it). A failed run's stdout is kept
// the same way: it is what a user debugging the failure reads.
func (w *Worker) storeLargeStdout(ctx context.Context, rep *api.Report, opts client.BlobOptions) {
	if len(rep.Stdout) == 0 { // every threshold is > 0
		return
	}
	opts.InlineThreshold = w.inlineThreshold(ctx)
	if int64(len(rep.Stdout)) <= opts.InlineThreshold {
		return
	}
	h, m, err := w.client.PutBlobFrom(ctx, bytes.NewReader(rep.Stdout), int64(len(rep.Stdout)), opts)
	if err != nil || m == nil {
		if err != nil && !errors.Is(err, storage.ErrNotEnoughPeers) {
			w.log.Warn("storing a large result on storage peers failed; sending it inline", "job", rep.Job, "task", rep.Index, "err", err)
		}
		return
	}
	rep.Stdout, rep.StdoutBlob = nil, h
}

// inlineThreshold is the cluster's inline threshold: results over it go to
// the storage peers. The client caches it (see client.Client.ClusterStorage);
// when the servers cannot be asked it is the last value known, else
// storage.DefaultInlineThreshold.
func (w *Worker) inlineThreshold(ctx context.Context) int64 {
	cfg, err := w.client.ClusterStorage(ctx)
	if err != nil {
		w.log.Debug("storage config", "err", err)
	}
	if cfg.InlineThreshold > 0 {
		return cfg.InlineThreshold
	}
	return storage.DefaultInlineThreshold
}
