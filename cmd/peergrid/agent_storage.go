package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/peergrid/peergrid/worker"
)

// storageOnly reports whether this agent runs a storage peer that runs no
// tasks: `agent --server --storage` without --worker. A plain --server keeps
// no shards (--storage defaults to true for workers only), so the flag must
// be given explicitly.
func (f *agentFlags) storageOnly() bool {
	return f.server && !f.worker && f.storageSet && f.storage
}

// runStoragePeer runs the server's storage peer in this process: the worker
// package's storage-peer code with NoTasks, under the server's own id (so
// `peergrid peers` shows one line, roles server and storage). Its shards
// live where a worker on this data dir keeps them, so adding --worker later
// keeps serving them.
func (m *Main) runStoragePeer(ctx context.Context, f *agentFlags, name string, log *slog.Logger) error {
	dir := filepath.Join(f.dataDir, "worker")
	c, name, shardTLS, err := enroll(ctx, f, dir, name, 0)
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, worker.Config{
		ID: name, Client: c, DataDir: dir, NoTasks: true, ShardTLS: shardTLS,
		Heartbeat: f.workerTTL / 4, Logger: log, StorageBind: storageBind(f), StorageAdvertise: f.storageAdv,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	log.Info("storage peer started (runs no tasks)", "shards", w.StorageAddr())
	return w.Run(ctx)
}
