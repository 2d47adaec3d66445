package worker

import (
	"context"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/wasm"
)

// BatchRunner is a Runner that can also run several tasks on one executor
// in one round trip (wasm.Pool.RunBatch). A worker whose Runner is one
// runs tiny tasks of one module in batches.
type BatchRunner interface {
	RunBatch(ctx context.Context, batch []wasm.BatchTask, done func(i int, res *wasm.Result, err error))
}

var _ BatchRunner = (*wasm.Pool)(nil)

// Batching. Tasks whose average run time is under pipelineBelow go to
// the pool in batches of one module, each expected to run about batchSpan
// in all (at most maxBatch tasks) and at least two, so the other cores
// still find work in the queue. A tiny task costs the executor round trip
// more than its run. A task of a few milliseconds alone left its executor
// idle after each answer until this process woke, took the next task and
// wrote it; in a batch the next waits in the executor's pipe and starts
// as the last answers (see BENCHMARKS.md, issue 15, "pipelining"). Each
// task of a batch is still run, tracked, stopped and reported on its own;
// a batch only shares the executor and the write that sends it.
const (
	batchSpan     = 5 * time.Millisecond
	maxBatch      = 64
	pipelineBelow = 50 * time.Millisecond
	pipelineDepth = 2
)

// batchable reports whether a task may share a batch: its input is inline
// (a stored one is fetched into a file first, one task at a time).
func batchable(a api.Assignment) bool { return a.InputHash == "" }

// takeBatch adds to a the batchable tasks of its module queued behind it,
// as many as batchSize allows. The first task taken that cannot join is
// returned as next, to start the next batch.
func (r *run) takeBatch(a api.Assignment) (batch []api.Assignment, next *api.Assignment) {
	batch = []api.Assignment{a}
	for n := r.batchSize(); len(batch) < n; {
		select {
		case b, ok := <-r.queue:
			if !ok {
				return batch, nil
			}
			if !batchable(b) || b.ModuleHash != a.ModuleHash {
				return batch, &b
			}
			batch = append(batch, b)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// batchSize is how many tasks a batch may hold now: 1 unless tasks are
// under pipelineBelow, then batchSpan of them and at least 2, leaving each
// core its share of the queue.
func (r *run) batchSize() int {
	avg := time.Duration(r.avgNs.Load())
	if avg <= 0 || avg >= pipelineBelow {
		return 1
	}
	share := len(r.queue)/r.w.cfg.Cores + 1
	return min(max(int(batchSpan/avg), pipelineDepth), maxBatch, share)
}

// batchTask is a task of a batch with its run's context and request.
type batchTask struct {
	a   api.Assignment
	ctx context.Context
	req *wasm.Request
}

// runBatch runs tasks of one module in one batch, each tracked (so a
// heartbeat can stop it), observed and reported as runOne does.
func (r *run) runBatch(batch []api.Assignment) {
	items := make([]batchTask, 0, len(batch))
	tasks := make([]wasm.BatchTask, 0, len(batch))
	for _, a := range batch {
		ctx := r.track(refOf(a))
		req, rep, ok := r.request(ctx, a)
		if !ok {
			r.untrack(refOf(a))
			r.finish(a, rep, ctx.Err() != nil)
			continue
		}
		items = append(items, batchTask{a: a, ctx: ctx, req: req})
		tasks = append(tasks, wasm.BatchTask{Ctx: ctx, Req: req})
	}
	last := time.Now()
	r.batches.RunBatch(r.workCtx, tasks, func(i int, res *wasm.Result, err error) {
		it := items[i]
		rep := r.outcome(it.ctx, it.a, it.req, res, err)
		now := time.Now()
		if rep.Duration > 0 {
			r.observe(rep.Duration) // run time: a pause does not make tasks look long
		} else {
			r.observe(now.Sub(last))
		}
		last = now
		stopped := it.ctx.Err() != nil
		r.untrack(refOf(it.a))
		r.finish(it.a, rep, stopped)
	})
}
