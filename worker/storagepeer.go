package worker

import (
	"errors"

	"github.com/peergrid/peergrid/api"
)

// startStorageOnly finishes New for a peer that keeps shards but runs no
// tasks (Config.NoTasks, a server's storage peer): no executor pool, no
// engines. Run heartbeats, takes repair orders and sweeps orphan shards,
// and never leases.
func (w *Worker) startStorageOnly() (*Worker, error) {
	if w.cfg.StorageBind == "" {
		return nil, errors.New("worker: a peer that runs no tasks must be a storage peer (StorageBind)")
	}
	if err := w.serveShards(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// heartbeatRequest is what a heartbeat says. A storage-only peer offers no
// cores or engines and holds no leases, so the leader gives it no worker
// role (it is never counted as one, see Ledger.otherWorkerAlive) and no tasks.
func (r *run) heartbeatRequest(draining bool) *api.HeartbeatRequest {
	w := r.w
	if w.cfg.NoTasks {
		return &api.HeartbeatRequest{Worker: w.cfg.ID, Address: w.address(), Draining: draining, StorageOnly: true}
	}
	return &api.HeartbeatRequest{
		Worker: w.cfg.ID, Address: w.address(), Cores: w.cfg.Cores, Draining: draining, Running: r.runningRefs(), Held: r.heldRefs(), Engines: w.engines,
		Storage: w.shards != nil,
	}
}
