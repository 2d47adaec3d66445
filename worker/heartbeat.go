package worker

import (
	"context"
	"errors"
	"time"

	"github.com/peergrid/peergrid/api"
)

// heartbeatLoop says the worker is alive every Config.Heartbeat until ctx
// ends (the start of a drain, which sends a last one itself).
func (r *run) heartbeatLoop(ctx context.Context) {
	if r.w.cfg.NoTasks { // it never leases: register now, not a heartbeat later
		r.sendHeartbeat(ctx, false)
	}
	t := time.NewTicker(r.w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sendHeartbeat(ctx, false)
		}
	}
}

// sendHeartbeat sends one heartbeat and acts on the answer: it learns the
// TTL, stops the attempts whose lease is gone and starts the repairs it is
// given.
func (r *run) sendHeartbeat(ctx context.Context, draining bool) {
	ctx, cancel := context.WithTimeout(ctx, r.heartbeatTimeout())
	defer cancel()
	resp, err := r.w.client.Heartbeat(ctx, r.heartbeatRequest(draining))
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.w.log.Warn("heartbeat failed", "err", err)
		}
		return
	}
	r.ttl.Store(int64(resp.TTL))
	if r.vol != nil {
		r.vol.heard(resp)
	}
	r.noteDistrust(resp.Distrusted)
	r.stopStale(resp.Stale)
	for _, o := range resp.Repairs {
		r.startRepair(o)
	}
}

// heartbeatTimeout bounds each call by half the server's TTL once known, so
// a call stuck on a dead server cannot make the worker miss its TTL.
func (r *run) heartbeatTimeout() time.Duration {
	timeout := min(10*time.Second, max(2*r.w.cfg.Heartbeat, time.Second))
	if ttl := time.Duration(r.ttl.Load()); ttl > 0 {
		timeout = min(timeout, ttl/2)
	}
	return timeout
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
		Storage: w.shards != nil, Paused: r.vol != nil && r.vol.paused(),
	}
}

// noteDistrust logs when the grid starts or stops distrusting this worker
// (its results were outvoted too often by other workers' replicas): while
// it does, every lease is refused, so the donor must know why it is idle.
func (r *run) noteDistrust(distrusted bool) {
	if r.distrusted.Swap(distrusted) == distrusted {
		return
	}
	if distrusted {
		r.w.log.Warn("the grid distrusts this worker: its results disagreed with other workers' too often, so it gets no tasks; "+
			"check this machine (overclocking, memory errors), then ask an operator to run: peergrid peers trust "+r.w.cfg.ID, "peer", r.w.cfg.ID)
		return
	}
	r.w.log.Info("the grid trusts this worker again", "peer", r.w.cfg.ID)
}
