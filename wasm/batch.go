package wasm

import (
	"context"
	"time"
)

// BatchTask is one task of Pool.RunBatch.
type BatchTask struct {
	// Ctx, if not nil, is the task's own context: once it is done the task
	// is not sent, or, if it is running, its executor is killed (as Run's
	// ctx would), and the task ends with its error.
	Ctx context.Context
	Req *Request
}

// minPipeCapacity is the least a pipe holds: one 4 KiB page on Linux (a
// user's pipes past pipe-user-pages-soft get one or two), 16 KiB on macOS.
const minPipeCapacity = 4 << 10

// batchBytes bounds the request frames sent behind a batch's first, for a
// request pipe holding capacity bytes. They wait in the pipe while the
// tasks before them run, so they must fit in it whatever the answers'
// sizes, or the pool's write and the executor's answer could each wait on
// the other; a quarter is left spare. A tiny task's frame is ~200 bytes:
// a 64 KiB pipe takes a whole batch of the worker's in one write.
func batchBytes(capacity int) int { return capacity - capacity/4 }

// RunBatch runs the tasks of batch one after another on one executor,
// each as Run would run it, sent in one write: the executor reads each
// next task from its pipe as it answers the last, instead of sleeping
// until the pool's next write wakes it, and the pool writes once (the pipe
// round trip was the largest part of a tiny task's cost). done is called
// once for each task, with what Run would have returned for it, as its
// answer is read (in groups, see answerPacer: at most coalesceMax after
// it ended): in order, except that a task whose Ctx is done before it is
// sent ends at once.
//
// Each task is still a fresh instance with its own limits and deadline,
// and Result.CPUTime is its own. A task that kills or hangs its executor
// fails alone: the tasks sent behind it had not started, and run on a
// fresh executor. A task whose auto engine is still on trial runs alone,
// so its trial is measured as Run measures it (see streak); frames past
// batchBytes of the pipe go in later writes.
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
	proc.awaitAnswerAs(sent[0].t.engine, sent[0].t.sent.ModuleHash) // one module per batch
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
	pace := answerPacer{proc: proc, closed: p.closed, fill: started.at}
	for k, it := range sent {
		if proc.br.Buffered() == 0 { // nothing read ahead: this read waits for the executor
			pace.beforeFill(ctx, k, len(sent))
		}
		res, err, healthy := proc.answer(ctx, it.ctx, p.closed, &it.t.sent, it.t.box(), started)
		pace.afterRead(k)
		started = proc.startMark() // the executor starts the next task as it answers this one
		p.ran(proc, it.t, proc.warmingUp(it.t.engine, it.t.sent.ModuleHash, p.warmUp), res, err)
		done(it.index, res, err)
		if !healthy {
			p.setBusy(proc, false)
			p.release(proc, false, err)
			return consumedThrough(items, it)
		}
	}
	pace.end(len(sent))
	p.setBusy(proc, false)
	p.release(proc, !p.overgrown(proc), nil)
	return consumed
}

// Reading a batch's answers. Read as each came, every tiny task cost a
// wake-up of this process's reader and a switch on the executor's CPU.
// So before a read that finds no answer read ahead, the pool waits about
// as long as the executor takes to run coalesceGroup more tasks (its pace,
// learned as it goes), then reads what came together. Each answer is in
// the pipe as soon as its task ends, so nothing is lost if the executor
// dies meanwhile; the executor keeps each task's deadline itself, and a
// task's done context or the parent's backstop acts at most coalesceMax
// late. The answers of one group are handled while the executor runs the
// next.
const (
	coalesceGroup   = 16
	coalesceMax     = 5 * time.Millisecond
	coalesceMinPace = time.Millisecond
)

// answerPacer waits before reads of a batch's answers and learns the
// executor's pace from them: the answers one read found came in since the
// read before it, while the executor, with tasks still to run, was busy.
type answerPacer struct {
	proc     *process
	closed   <-chan struct{}
	fill     time.Time // when the last read that found nothing read ahead ended (at first: the write)
	prevFill time.Time // the one before
	first    int       // the index of the first answer that read found
}

// beforeFill learns from the answers the last fill found, then waits for
// more to come before answer k of n is read.
func (a *answerPacer) beforeFill(ctx context.Context, k, n int) {
	if found := k - a.first; found > 0 && !a.prevFill.IsZero() {
		a.learn(a.fill.Sub(a.prevFill) / time.Duration(found))
	}
	a.first = k
	a.proc.fills++
	d := coalesceWait(a.proc.pace, n-k-1)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-a.closed:
	}
}

// coalesceWait is how long to wait, at the executor's pace, before a read
// that finds no answer read ahead, with behind tasks still to answer
// after the one it reads: about the time coalesceGroup of them take, at
// most coalesceMax. Answers of tasks as long as coalesceMinPace are read
// as they come (they are at most a thousand a second): a wait would add a
// timer's wake-up and save none. The last answer is read as it comes too:
// waiting past it would idle the executor.
func coalesceWait(pace time.Duration, behind int) time.Duration {
	want := min(behind, coalesceGroup)
	if want < 1 || pace <= 0 || pace >= coalesceMinPace {
		return 0
	}
	return min(pace*time.Duration(want), coalesceMax)
}

// afterRead notes when a read that found nothing read ahead ended.
func (a *answerPacer) afterRead(k int) {
	if k == a.first {
		a.prevFill, a.fill = a.fill, time.Now()
	}
}

// end learns from the answers the last fill found, the last of n among
// them: the executor may have idled after it, so their spacing bounds its
// pace from above (a pace learned from a cold first task, which took
// milliseconds, is cut at once).
func (a *answerPacer) end(n int) {
	if found := n - a.first; found > 0 && !a.prevFill.IsZero() {
		a.proc.pace = min(a.proc.pace, a.fill.Sub(a.prevFill)/time.Duration(found))
	}
}

func (a *answerPacer) learn(d time.Duration) {
	if a.proc.pace <= 0 {
		a.proc.pace = d
		return
	}
	a.proc.pace += (d - a.proc.pace) / 4
}

// encodeBatch encodes into proc.batch the tasks of items that go in one
// write (the first, then those that fit in proc.batchBytes), ending at once
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
		} else if len(proc.batch)-first > proc.batchBytes {
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
