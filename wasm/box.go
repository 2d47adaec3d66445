package wasm

import (
	"fmt"
	"strings"
	"time"
)

// The memory box. The task's memory cap bounds only its linear memory;
// what an engine builds beside it (compiled code, tables, per-function
// data) is bounded by nothing the engine offers: a table.grow loop grew a
// wazero executor to 4.4 GB and a wasmer one to 1.6 GB under a 1 MiB cap.
// So on Linux each executor runs every task under RLIMIT_DATA: its own use
// when the task starts (runtime, engines, caches: the "base"), plus the
// task's cap, plus an allowance for the engine's work on this module.
//
// RLIMIT_DATA, not RLIMIT_AS: since Linux 4.7 it counts private writable
// mappings, so the address space that wasmtime's pooling allocator and
// wazero's mmap memory reserve (PROT_NONE, hundreds of GB for wasmtime)
// costs nothing until it is made writable, while every byte an engine, the
// Go runtime or a thread stack can write counts. Past the box an
// allocation fails: a linear memory refuses to grow (the task fails as
// KindMemory, as at its cap), and anything else kills the executor, which
// the pool reports as KindMemory naming the box (boxDeath) and replaces.
//
// Compiling happens inside the box too (it is part of the task), under
// the compile time limit of PoolConfig.CompileTimeout.

// engineAllowance is what a module of size bytes may use beyond its linear
// memory and the executor's base: 256 MiB, plus 128 bytes per byte of
// module for compiling, twice the most measured here (BENCHMARKS.md,
// "Memory box": the largest function body the limits allow added 62
// bytes of VmData per module byte on wazero, 41-47 on wasmtime and wasmer;
// the Go guest 19-41), rounded up to a MiB. The 256 MiB are for the
// runtime: output buffers (16 MiB per stream by default), thread stacks.
func engineAllowance(moduleSize int64) uint64 {
	return roundUp(256<<20+128*uint64(max(moduleSize, 0)), 1<<20)
}

// memoryBox describes one task's box, for errors.
type memoryBox struct {
	cap, allowance uint64
}

func (b memoryBox) String() string {
	return fmt.Sprintf("its memory box (the task's %s cap + %s for the engine, over the executor's own use)",
		formatBytes(b.cap), formatBytes(b.allowance))
}

// outOfMemoryMarks are what an executor writes when an allocation fails
// and it dies of it: the Go runtime, Rust's allocator (wasmer, wasmtime),
// a thread that could not get its stack.
var outOfMemoryMarks = []string{
	"runtime: out of memory",
	"memory allocation of",
	"pthread_create failed",
	"cannot allocate memory",
	"failed to allocate",
}

// deathSigns reads a dying executor's stderr, line by line, for signs that
// its box killed it. Besides saying so, the Go runtime sometimes dies of a
// fault in its own code (the garbage collector's work queues, whose memory
// it does not check) when the box refuses it memory: a fault the runtime
// did not turn into a panic and that did not arrive in C code (wasmer's or
// wasmtime's) is taken for that. Any other death is KindCrash.
type deathSigns struct {
	oomLine      string // the first line saying it ran out of memory
	runtimeFault bool   // it died of a signal it did not turn into a panic
	inCgo        bool   // ... which arrived in C code
}

func (d *deathSigns) read(line string) {
	switch {
	case d.oomLine == "" && diedOfMemory(line):
		d.oomLine = strings.TrimSpace(line)
	case strings.HasPrefix(line, "SIGSEGV: segmentation violation"), strings.HasPrefix(line, "SIGBUS: bus error"):
		d.runtimeFault = true
	case strings.HasPrefix(line, "signal arrived during cgo execution"):
		d.inCgo = true
	}
}

// ofMemory reports whether the signs say the box killed it, and how.
func (d *deathSigns) ofMemory() (string, bool) {
	switch {
	case d.oomLine != "":
		return d.oomLine, true
	case d.runtimeFault && !d.inCgo:
		return "the Go runtime faulted once refused memory", true
	}
	return "", false
}

// diedOfMemory reports whether an executor's stderr line says it ran out
// of memory.
func diedOfMemory(line string) bool {
	s := strings.ToLower(line)
	for _, m := range outOfMemoryMarks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// boxDeath is the failure of a task whose executor died of its box.
func boxDeath(pid int, box memoryBox, note string) *TaskError {
	return taskErrorf(KindMemory, "the executor ran out of %s while compiling or running the task, and was replaced (process %d: %s)",
		box, pid, note)
}

// executorBox is an executor's view of its box: what it uses of its own
// (the base), measured again at most every baseMeasureEvery (reading /proc
// costs ~60 us here, as much as a tiny task), and at once after it made an
// engine (wasmtime's adds 2.5 GB of mapped tables).
//
// The box stays on between tasks: lifting it after each and setting it
// again for the next cost two system calls a task, 4% of a tiny task's
// executor. What the executor does between tasks (answer, read the next
// request) allocates little, well inside the last task's box, which left
// at least engineAllowance above its base; what could need more lifts it
// first: making an engine, reading a request larger than liftAbove.
type executorBox struct {
	base     uint64
	measured time.Time
	stale    bool
	limit    uint64 // the soft RLIMIT_DATA set now; 0 means none set
}

const baseMeasureEvery = 250 * time.Millisecond

// liftAbove is the request size past which the executor lifts its box
// before reading the request (its stdin is in it).
const liftAbove = 1 << 20

// enter puts this executor under the box for a task of a module of
// moduleSize bytes with a memory cap of limit (a system call only when
// that differs from the box it is in). It does nothing where the process
// cannot measure its own use (not Linux).
func (b *executorBox) enter(limit uint64, moduleSize int64) {
	if now := time.Now(); b.stale || now.Sub(b.measured) >= baseMeasureEvery {
		base, ok := dataBytes()
		if !ok {
			return
		}
		b.base, b.measured, b.stale = base, now, false
	}
	// No debug.SetMemoryLimit beside it: collecting at the edge of the
	// box made the GC itself the first to be refused memory.
	if want := b.base + limit + engineAllowance(moduleSize); want != b.limit {
		setDataLimit(want)
		b.limit = want
	}
}

// lift takes the executor out of its box.
func (b *executorBox) lift() {
	if b.limit != 0 {
		setDataLimit(noDataLimit)
		b.limit = 0
	}
}
