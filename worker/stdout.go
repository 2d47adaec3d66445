package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

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

// storeSpilledStdout stores a stdout the task wrote to a file (it was over
// the inline threshold, see execute) on the storage peers, streaming it
// from the file, and reports its hash. With too few storage peers it is
// read into the report inline if the ledger may keep it so (as
// storeLargeStdout does); larger, the attempt fails as the worker's, to be
// run again elsewhere. Only size bytes are read: at a timeout the task may
// have written more after its result was taken.
func (w *Worker) storeSpilledStdout(ctx context.Context, rep *api.Report, path string, size int64, opts client.BlobOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("stdout file: %w", err)
	}
	defer f.Close()
	opts.InlineThreshold = w.inlineThreshold(ctx)
	var h string
	var m *storage.Manifest
	if size > opts.InlineThreshold {
		h, m, err = w.client.PutBlobFrom(ctx, io.NewSectionReader(f, 0, size), size, opts)
		if err == nil && m != nil {
			rep.Stdout, rep.StdoutBlob = nil, h
			return nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotEnoughPeers) {
			w.log.Warn("storing a large result on storage peers failed; sending it inline", "job", rep.Job, "task", rep.Index, "err", err)
		}
	}
	if size > storage.MaxInline {
		return fmt.Errorf("stdout of %d bytes could not be stored on the storage peers (%v), and is over the %d bytes the ledger keeps inline", size, err, storage.MaxInline)
	}
	rep.Stdout = make([]byte, size)
	if _, err := io.ReadFull(f, rep.Stdout); err != nil {
		rep.Stdout = nil
		return fmt.Errorf("stdout file: %w", err)
	}
	return nil
}

// outputsDir holds the stdout files of the tasks being run.
func (w *Worker) outputsDir() string { return filepath.Join(w.cfg.DataDir, "outputs") }

// outputPath names a new stdout file for a run (the executor makes it if
// the task's output spills).
func (w *Worker) outputPath() string {
	return filepath.Join(w.outputsDir(), strconv.FormatUint(w.outputSeq.Add(1), 10)+".out")
}

// removeOutput deletes a run's stdout file, if it was made.
func (w *Worker) removeOutput(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("cannot remove a stdout file", "path", path, "err", err)
	}
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
