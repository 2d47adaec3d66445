package wasm

// Tearing an instance down after the answer. An instance's teardown is
// work the task's result does not wait for: wasmtime zeroes the memory its
// pooling allocator keeps resident (~70 us for a Go-built module's 3 MB,
// the largest part of such a task's time outside the module), wazero and
// wasmer unmap theirs. In process, Run tears down before it returns, as
// always. An executor asks its engines (runProbe.deferTeardown) to leave
// the teardown to it, sends the answer, and only then tears down, before
// it reads the next request: the parent decodes the answer and sends the
// next task meanwhile, on the other core. Each task still gets a fresh
// instance, and a teardown is always finished before the next task starts.
// A task's Result.Duration then ends at its answer; whatever measures
// what a teardown costs sees it: wasmtime's memory modes observe each run
// once its store is closed, and a task whose executor CPU time a pool
// measures to choose an engine (Request.measureCPU) tears down before
// answering, so that no other engine's next task is charged for it.
//
// Only a small instance is left for later: the pool reads an executor's
// resident memory right after an answer (Pool.overgrown), and may then
// still count memory the teardown is about to give back; bounded by
// deferTeardownMax, that is a small part of any sensible
// PoolConfig.MaxExecutorGrowth. A bigger memory's teardown costs little
// beside the run that filled it.

// deferTeardownMax is the largest linear memory whose teardown an executor
// leaves until after the answer.
const deferTeardownMax = 32 << 20

// teardown tears a run's instance down with f: now, unless p asks for the
// teardown to be left to its executor and the instance's linear memory is
// of memoryBytes, at most deferTeardownMax; then f runs in finish, and
// teardown reports true. A nil p (a run in process) tears down now.
func (p *runProbe) teardown(memoryBytes uint64, f func()) (deferred bool) {
	if p == nil || !p.deferTeardown || memoryBytes > deferTeardownMax {
		f()
		return false
	}
	p.mu.Lock()
	p.teardowns = append(p.teardowns, f)
	p.mu.Unlock()
	return true
}

// finish runs the teardowns left to it, in the order they were left.
func (p *runProbe) finish() {
	p.mu.Lock()
	fs := p.teardowns
	p.teardowns = nil
	p.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
