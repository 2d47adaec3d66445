package worker

import (
	"context"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// runLoop is one core: it runs leased tasks until the queue is closed by a
// drain, one at a time, or tiny ones of one module in batches
// (takeBatch).
func (r *run) runLoop() {
	var next *api.Assignment // taken from the queue by takeBatch, not of its batch
	for {
		var a api.Assignment
		if next != nil {
			a, next = *next, nil
		} else {
			var ok bool
			if a, ok = <-r.queue; !ok {
				return
			}
		}
		batch := []api.Assignment{a}
		if r.batches != nil && batchable(a) {
			batch, next = r.takeBatch(a)
		}
		r.runStarting(batch)
	}
}

// runStarting runs a batch of tasks (often of one), unless the worker is
// draining or stopped, or they are over the volunteer's max_memory.
func (r *run) runStarting(batch []api.Assignment) {
	select {
	case <-r.draining:
		r.handBackAll(batch)
		return
	default:
	}
	if !r.gate.waitToStart(r.draining) { // paused past pause_keep, or draining while paused
		r.handBackAll(batch)
		return
	}
	memory := batchMemory(batch) // they run one at a time: the largest cap is what they need
	started, err := r.mem.acquire(memory, r.draining)
	switch {
	case err != nil:
		for _, a := range batch {
			r.queueReport(r.refusal(a, err))
		}
		return
	case !started:
		r.handBackAll(batch)
		return
	}
	if len(batch) == 1 {
		r.runOne(batch[0])
	} else {
		r.runBatch(batch)
	}
	r.mem.release(memory)
}

func (r *run) handBackAll(batch []api.Assignment) {
	for _, a := range batch {
		r.handBack(a)
	}
}

func batchMemory(batch []api.Assignment) int64 {
	var m uint64
	for _, a := range batch {
		m = max(m, a.Memory)
	}
	return int64(m)
}

// runOne runs one attempt, tracked so a heartbeat or a pause can stop it.
func (r *run) runOne(a api.Assignment) {
	ref := refOf(a)
	ctx := r.track(ref)
	began := time.Now()
	rep := r.execute(ctx, a)
	if rep.Duration > 0 {
		r.observe(rep.Duration) // run time: a pause does not make tasks look long
	} else {
		r.observe(time.Since(began))
	}
	stopped := ctx.Err() != nil
	r.untrack(ref)
	r.finish(a, rep, stopped)
}

// refusal is the report of a task this worker will not run: its memory cap
// is over the volunteer's max_memory. It fails the attempt as the worker's
// fault, so the retry goes to another worker (the ledger steers a retry
// away from the worker it failed on).
func (r *run) refusal(a api.Assignment, err error) api.Report {
	r.w.log.Warn("refusing a task", "job", a.Job, "task", a.Index, "err", err)
	return api.Report{TaskRef: refOf(a), Result: tasks.Result{ExitCode: -1, ErrorKind: "worker", Error: err.Error()}}
}

// finish sends an attempt's report, unless nobody wants it: a task killed
// by the end of a drain is handed back (not its fault, so no attempt is
// charged), and one whose lease is gone is dropped.
func (r *run) finish(a api.Assignment, rep api.Report, stopped bool) {
	switch {
	case r.workCtx.Err() != nil: // killed by the end of a drain: not the task's fault
		r.handBack(a)
	case r.takeHandingBack(refOf(a)): // stopped by a pause past pause_keep
		r.handBack(a)
	case stopped: // stopped because its lease is gone: nobody wants the result
		r.w.log.Info("stopped a task whose lease is gone", "job", a.Job, "task", a.Index)
		r.hold(refOf(a), false)
		r.releaseSlots(1)
	default:
		r.queueReport(rep)
	}
}

// execute runs one assignment and turns the outcome into a report.
func (r *run) execute(ctx context.Context, a api.Assignment) api.Report {
	req, rep, ok := r.request(ctx, a)
	if !ok {
		return rep
	}
	if a.InputHash != "" {
		path, err := r.w.fetchInput(ctx, a)
		if err != nil {
			rep.ErrorKind, rep.Error = "worker", err.Error()
			return rep
		}
		defer r.w.removeInput(path) // on every path, a panic included (removing twice is harmless)
		req.StdinPath = path
	}
	res, err := r.w.pool.Run(ctx, req)
	if req.StdinPath != "" {
		r.w.removeInput(req.StdinPath) // the run is over: free the disk before storing the result
	}
	return r.outcome(ctx, a, req, res, err)
}

// request is what the sandbox is asked to run for a (its stored input
// aside), with its module in the module directory; else false, and the
// report of why it cannot run.
func (r *run) request(ctx context.Context, a api.Assignment) (*wasm.Request, api.Report, bool) {
	rep := api.Report{TaskRef: refOf(a)}
	if err := r.w.ensureModule(ctx, a.ModuleHash); err != nil {
		rep.ErrorKind, rep.Error = moduleErrorKind(err), err.Error()
		return nil, rep, false
	}
	req := runRequest(a, r.w.engines)
	// Stdout over the inline threshold is going to the storage peers: it
	// spills to a file as the task writes it, so it never sits in memory.
	req.StdoutPath, req.StdoutSpill = r.w.outputPath(), r.w.inlineThreshold(ctx)
	return req, rep, true
}

// outcome is the report of a run of req for a.
func (r *run) outcome(ctx context.Context, a api.Assignment, req *wasm.Request, res *wasm.Result, err error) api.Report {
	rep := api.Report{TaskRef: refOf(a)}
	defer func() {
		// The file exists only if stdout spilled, or may if the run broke
		// off: a remove of a file never made costs two syscalls per task
		// (a fifth of a tiny task's grid CPU), so it is skipped.
		if res == nil || err != nil || res.StdoutSpilled {
			r.w.removeOutput(req.StdoutPath)
		}
	}()
	r.w.recordOutcome(ctx, &rep, a, req, res, err)
	return rep
}

// runRequest is what the sandbox is asked to run for an assignment, on a
// worker that offers engines. An inline input (small) goes in as bytes; a
// stored one is added by execute as a file.
func runRequest(a api.Assignment, engines []string) *wasm.Request {
	req := &wasm.Request{
		ModuleHash: a.ModuleHash, Name: a.Name, Args: a.Args, Env: a.Env, Seed: a.Seed, Engine: engineToRun(a, engines),
		Limits: wasm.Limits{MemoryBytes: a.Memory, Timeout: a.Timeout, MaxOutput: int64(a.MaxOutput)},
	}
	if a.InputHash == "" {
		req.Stdin = a.Stdin
	}
	return req
}

// recordOutcome puts what a run produced into its report: the output (a
// large stdout stored on the storage peers, see storeLargeStdout and
// storeSpilledStdout) and, if it failed, how. An error that is not a task
// failure is the worker's.
func (w *Worker) recordOutcome(ctx context.Context, rep *api.Report, a api.Assignment, req *wasm.Request, res *wasm.Result, err error) {
	if res != nil {
		rep.ExitCode, rep.Stdout, rep.Stderr, rep.Duration, rep.Engine = res.ExitCode, res.Stdout, res.Stderr, res.Duration, res.Engine
		opts := client.BlobOptions{K: a.K, M: a.M}
		if res.StdoutSpilled {
			if serr := w.storeSpilledStdout(ctx, rep, req.StdoutPath, res.StdoutSize, opts); serr != nil && err == nil {
				err = serr
			}
		} else {
			w.storeLargeStdout(ctx, rep, opts)
		}
	}
	if err != nil {
		rep.ErrorKind, rep.Error = string(wasm.KindOf(err)), err.Error()
		if rep.ErrorKind == "" {
			rep.ErrorKind = "worker"
		}
	}
}

// engineToRun is the engine an assignment asks for: for an "auto" job the
// grid's choice for the module where it has one and this worker offers it
// (the pool then runs it without trials of its own), else the job's.
func engineToRun(a api.Assignment, engines []string) string {
	auto := a.Engine == "" || a.Engine == wasm.EngineAuto
	if auto && a.GridEngine != "" && slices.Contains(engines, a.GridEngine) {
		return a.GridEngine
	}
	return a.Engine
}
