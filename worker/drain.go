package worker

import (
	"context"
	"time"

	"github.com/peergrid/peergrid/api"
)

// drain stops leasing, hands back tasks not yet started, lets running ones
// finish within the grace period (then kills them and hands them back too),
// and sends every report.
func (r *run) drain() {
	r.w.log.Info("draining", "grace", r.w.cfg.DrainGrace)
	r.leaseStop()
	r.leasing.Wait()
	close(r.draining)
	if r.vol != nil && r.vol.stopped() {
		// Stopped tasks cannot finish within the grace: hand them back now.
		r.gate.set(gateHandBack)
		r.handBackRunning()
	}
	r.sendHeartbeat(context.Background(), true)
	close(r.queue)
	for a := range r.queue { // hand back what no runner started, now, not after the running ones
		r.handBack(a)
	}
	r.awaitRunners()
	r.workCancel() // also stops a repair in progress
	r.repairs.Wait()
	close(r.reports)
	select { // a lingering report loop sends its batch now, not at the linger's end
	case r.reportsDue <- struct{}{}:
	default:
	}
	r.reporting.Wait()
}

// awaitRunners waits for the running tasks to finish, killing them when the
// drain grace is over.
func (r *run) awaitRunners() {
	done := make(chan struct{})
	go func() { r.runners.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.w.cfg.DrainGrace):
		r.w.log.Warn("drain grace over: stopping running tasks")
		r.workCancel()
		<-done
	}
}

// handBack releases a task this worker will not run, so it is queued again
// at once rather than when its lease expires.
func (r *run) handBack(a api.Assignment) {
	err := r.w.client.Release(context.Background(), &api.ReleaseRequest{
		Worker: r.w.cfg.ID, Tasks: []api.TaskRef{refOf(a)},
	})
	if err != nil {
		r.w.log.Warn("hand back failed; the lease will expire instead", "job", a.Job, "task", a.Index, "err", err)
	}
	r.hold(refOf(a), false)
	r.releaseSlots(1)
}
