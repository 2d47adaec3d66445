package worker

import (
	"context"
	"time"

	"github.com/peergrid/peergrid/api"
)

// A report batch waits a while for more finished tasks: fewer, larger
// reports mean fewer Raft entries, and each entry costs the grid far more
// CPU than the few hundred microseconds of the leader's own work (an
// fsync, the HTTP call, Apply): every entry wakes the dev process's
// threads, and while its fsync runs the Go runtime's sysmon ticks every
// 20 us, ~50 wake-ups an entry. With tasks of a few milliseconds that CPU
// is taken from the executors. So a batch waits until a lease's worth of
// tasks (the plan's batch, half or a quarter of the target: see
// leaseBatch), and at least lingerReports, have finished, and then rides
// on the lease call that refills those slots (carryReports): one call,
// one entry, per lease batch. The linger is the time that takes on this
// worker's cores, with a quarter more for tasks slower than their average,
// between minReportLinger and maxReportLinger; a batch that is worth a
// lease sooner goes at once (see queueReport). None at all when the worker
// holds no other lease, since nothing else can finish (a one-task job's
// result is not held back).
const (
	lingerReports   = 8
	minReportLinger = 5 * time.Millisecond
	maxReportLinger = prefetchHorizon * 3 / 4
)

// maxReportBatch bounds the reports sent in one call.
const maxReportBatch = 256

// reportLoop sends reports in batches: whatever finished while the previous
// call was in flight goes in the next one. A batch goes on the lease call
// the lease loop is waiting to make, if it is (carryReports), else alone,
// at once: never later than it would have gone alone. A report sent, or
// given up on, frees its lease's slot. Batches a failed lease call handed
// back (bounced) are sent alone.
func (r *run) reportLoop() {
	for {
		select {
		case batch := <-r.bounced:
			r.sendReports(batch)
			r.settle(batch) // their slots were freed by the lease call
		case first, ok := <-r.reports:
			if !ok {
				r.sendBounced()
				return
			}
			wait, due := r.reportLinger()
			r.dueReports.Store(int64(due))
			batch := r.gatherReports(first, wait)
			if r.carryReports(batch) {
				continue
			}
			r.sendReports(batch)
			r.settle(batch)
			r.releaseSlots(len(batch))
		}
	}
}

// carryReports hands batch to the lease loop if it is waiting for slots
// to make its next call, which then carries the reports (see leaseLoop).
func (r *run) carryReports(batch []api.Report) bool {
	select {
	case r.carry <- batch:
		return true
	default:
		return false
	}
}

// bounce hands back to the report loop, which sends them alone, reports
// the lease loop took but will not carry (no lease due) or whose call
// failed (whether the grid applied them is unknown). Their slots are free.
func (r *run) bounce(batch []api.Report) {
	if len(batch) > 0 {
		r.bounced <- batch
	}
}

// sendBounced sends the batches bounced before the lease loop stopped
// (a drain stops it before it closes reports).
func (r *run) sendBounced() {
	for {
		select {
		case batch := <-r.bounced:
			r.sendReports(batch)
			r.settle(batch)
		default:
			return
		}
	}
}

// settle counts sent reports in today's totals and forgets their leases.
func (r *run) settle(batch []api.Report) {
	if len(batch) == 0 {
		return
	}
	if r.vol != nil {
		r.vol.counted(batch)
	}
	for _, rep := range batch {
		r.hold(rep.TaskRef, false)
	}
}

// queueReport hands a finished attempt's report to the report loop, as
// runners do. A loop lingering over a batch is not woken for each report
// (a goroutine's wake-up costs this process a thread's wake-up or two,
// taken from the executors when they are busy): only once every lease held
// has finished, a lease's worth waits (dueReports) or a full batch, is it
// told to look (reportsDue).
func (r *run) queueReport(rep api.Report) {
	r.reports <- rep // never blocks: one report per slot, and the channel holds them all
	pending := int(r.pendingReports.Add(1))
	due := int(r.dueReports.Load())
	if _, held := r.counts(); pending >= held || pending >= maxReportBatch || (due > 0 && pending >= due) {
		select {
		case r.reportsDue <- struct{}{}:
		default: // already told
		}
	}
}

// gatherReports adds to first whatever else finishes within wait, up to
// maxReportBatch reports. It sleeps through the linger unless queueReport
// says the batch is due (see there). Reports already waiting are always
// taken, however long taking them lasts.
func (r *run) gatherReports(first api.Report, wait time.Duration) []api.Report {
	batch := []api.Report{first}
	defer func() { r.pendingReports.Add(-int64(len(batch))) }()
	linger := time.NewTimer(wait)
	defer linger.Stop()
	for woken := false; ; woken = true {
		if woken {
			r.lingerWakes.Add(1)
		}
		var open bool
		if batch, open = r.takeReports(batch); !open || len(batch) >= maxReportBatch {
			return batch
		}
		if _, held := r.counts(); held <= len(batch) {
			return batch // nothing else held, so nothing else will finish
		}
		select {
		case <-r.reportsDue:
		case <-linger.C:
			batch, _ = r.takeReports(batch)
			return batch
		}
	}
}

// takeReports appends the reports waiting, without blocking, up to
// maxReportBatch; false once the channel is closed (a drain).
func (r *run) takeReports(batch []api.Report) ([]api.Report, bool) {
	for len(batch) < maxReportBatch {
		select {
		case rep, ok := <-r.reports:
			if !ok {
				return batch, false
			}
			batch = append(batch, rep)
		default:
			return batch, true
		}
	}
	return batch, true
}

// reportLinger is how long a batch waits for more reports, and how many
// make it due at once (0: none; see lingerReports). A batch of tiny tasks,
// which finishes within minReportLinger, is left to the timer, so it
// gathers more than a lease's worth: fewer, larger calls.
func (r *run) reportLinger() (time.Duration, int) {
	avg := time.Duration(r.avgNs.Load())
	batch := max(lingerReports, r.plan().batch)
	perCore := avg * time.Duration(batch) / time.Duration(max(r.w.cfg.Cores, 1))
	if perCore < minReportLinger {
		return minReportLinger, 0
	}
	return min(perCore*5/4, maxReportLinger), batch
}

// sendReports retries until the grid takes the reports or the attempt is
// hopeless (then the leases expire and the tasks run again). Which reports
// the grid accepted does not matter here: one it ignored (a late attempt,
// a cancelled job) is settled all the same.
func (r *run) sendReports(batch []api.Report) {
	backoff := newBackoff()
	for attempt := 0; attempt < 10; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := r.w.client.Report(ctx, &api.ReportRequest{Worker: r.w.cfg.ID, Reports: batch})
		cancel()
		if err == nil {
			return
		}
		r.w.log.Warn("report failed", "tasks", len(batch), "err", err)
		backoff.wait(context.Background())
	}
	r.w.log.Error("giving up on reports; their leases will expire", "tasks", len(batch))
}
