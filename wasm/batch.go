package wasm

import (
	"context"
)

// BatchTask is one task of Pool.RunBatch.
type BatchTask struct {
	// Ctx, if not nil, is the task's own context: once it is done the task
	// is not sent, or, if it is running, its executor is killed (as Run's
	// ctx would), and the task ends with its error.
	Ctx context.Context
	Req *Request
}

// maxBatchBytes bounds the request frames sent behind a batch's first.
// They wait in the executor's request pipe while the tasks before them
// run, so they must fit in it whatever the answers' sizes, or the pool's
// write and the executor's answer could each wait on the other. A pipe
// holds at least one 4 KiB page on Linux (even once a user's pipes pass
// pipe-user-pages-soft) and 16 KiB on macOS. A tiny task's frame is
// ~200 bytes, so a write carries about fifteen.
const maxBatchBytes = 3 << 10

// RunBatch runs the tasks of batch one after another on one executor,
// each as Run would run it, sent in one write: the executor reads each
// next task from its pipe as it answers the last, instead of sleeping
// until the pool's next write wakes it, and the pool writes once (the pipe
// round trip was the largest part of a tiny task's cost). done is called
// once for each task, with what Run would have returned for it, as it
// ends: in order, except that a task whose Ctx is done before it is sent
// ends at once.
//
// Each task is still a fresh instance with its own limits and deadline,
// and Result.CPUTime is its own. A task that kills or hangs its executor
// fails alone: the tasks sent behind it had not started, and run on a
// fresh executor. A task whose auto engine is still on trial runs alone,
// so its trial is measured as Run measures it (see streak); frames past
// maxBatchBytes go in later writes.
//
// ctx bounds the wait for an executor and, like a task's Ctx, stops the
// running task; tasks not started when it is done end with its error.
func (p *Pool) RunBatch(ctx context.Context, batch []BatchTask, done func(i int, res *Result, err error)) {
	group := make([]batchItem, 0, len(batch))
	flush := func() {
		p.runGroup(ctx, group, done)
		group = group[:0]
	}
	for i, bt := range batch {
		t, err := p.prepare(bt.Req)
		if err != nil {
			flush()
			done(i, nil, err)
			continue
		}
		if t.measuring {
			flush()
			p.runGroup(ctx, []batchItem{{index: i, ctx: bt.Ctx, t: t}}, done)
			continue
		}
		group = append(group, batchItem{index: i, ctx: bt.Ctx, t: t})
	}
	flush()
}

// batchItem is a prepared task of a batch and its index there.
type batchItem struct {
	index int
	ctx   context.Context // the task's own, or nil
	t     *prepared
}

// runGroup runs items on executors until each has ended: one executor
// while it stays healthy, a fresh one for the tasks behind one that
// killed it.
func (p *Pool) runGroup(ctx context.Context, items []batchItem, done func(int, *Result, error)) {
	for len(items) > 0 {
		proc, err := p.acquire(ctx)
		if err != nil {
			for _, it := range items {
				done(it.index, nil, err)
			}
			return
		}
		items = items[p.runOn(ctx, proc, items, done):]
	}
}

// runOn sends as many of items as fit in one write to proc and reads their
// answers, and gives proc back; it returns how many of items ended. It
// stops at a task after which proc must be replaced: the tasks sent behind
// that one never started (the executor runs one at a time and starts no
// other once it answered a deadline or died), so the caller runs them on
// another executor.
func (p *Pool) runOn(ctx context.Context, proc *process, items []batchItem, done func(int, *Result, error)) int {
	if t := items[0].t; t.measuring { // alone in its group (RunBatch)
		t.engine = p.streak(proc, t.sent.ModuleHash, t.engine)
		t.sent.Engine = t.engine
	}
	sent, consumed := p.encodeBatch(proc, items, done)
	if len(sent) == 0 {
		p.release(proc, true, nil)
		return consumed
	}
	p.setBusy(proc, true)
	started := proc.startMark()
	err := proc.out.writeRaw(proc.batch)
	if cap(proc.batch) > smallFrame {
		proc.batch = nil // a large stdin was in it: do not keep its size
	}
	if err != nil { // the child is already dead
		p.setBusy(proc, false)
		it := sent[0]
		err = proc.failure(ctx, it.ctx, p.closed, err, it.t.box())
		done(it.index, nil, err)
		p.release(proc, false, err)
		return consumedThrough(items, it)
	}
	for _, it := range sent {
		res, err, healthy := proc.answer(ctx, it.ctx, p.closed, &it.t.sent, it.t.box(), started)
		started = proc.startMark() // the executor starts the next task as it answers this one
		p.ran(proc, it.t, proc.warmingUp(it.t.engine, it.t.sent.ModuleHash, p.warmUp), res, err)
		done(it.index, res, err)
		if !healthy {
			p.setBusy(proc, false)
			p.release(proc, false, err)
			return consumedThrough(items, it)
		}
	}
	p.setBusy(proc, false)
	p.release(proc, !p.overgrown(proc), nil)
	return consumed
}

// encodeBatch encodes into proc.batch the tasks of items that go in one
// write (the first, then those that fit in maxBatchBytes), ending at once
// those before the first sent whose own context is done; it returns the
// tasks sent and how many of items it took.
func (p *Pool) encodeBatch(proc *process, items []batchItem, done func(int, *Result, error)) (sent []batchItem, consumed int) {
	proc.batch = proc.batch[:0]
	first := 0
	for _, it := range items {
		if it.ctx != nil && it.ctx.Err() != nil {
			if len(sent) > 0 { // ended in a later write: only tasks before any sent end here
				break
			}
			done(it.index, nil, it.ctx.Err())
			consumed++
			continue
		}
		before := len(proc.batch)
		proc.batch = appendRequestFrame(proc.batch, &proc.enc, &it.t.sent)
		if len(sent) == 0 {
			first = len(proc.batch)
		} else if len(proc.batch)-first > maxBatchBytes {
			proc.batch = proc.batch[:before]
			break
		}
		sent = append(sent, it)
		consumed++
	}
	return sent, consumed
}

// consumedThrough is how many of items end with it: those before it
// ended too, or were skipped.
func consumedThrough(items []batchItem, it batchItem) int {
	for i := range items {
		if items[i].index == it.index {
			return i + 1
		}
	}
	return len(items)
}
