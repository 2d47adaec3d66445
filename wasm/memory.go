package wasm

import (
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

const wasmPageSize = 64 << 10

// memoryLimit is the per-run memory allocator. It hands out linear memories
// that refuse to grow past the limit and remembers that one tried, so a run
// that then fails is reported as a memory failure, not as a trap. (wazero's
// own WithMemoryLimitPages refuses silently: the run could not tell.)
//
// Memories come from mmap where the OS has it (memory_unix.go): linear
// memory on the Go heap makes a host GC cycle stall behind running wasm code,
// which has no preemption points. heap forces Go-heap memory, for comparison.
type memoryLimit struct {
	limit uint64
	heap  bool
	hit   atomic.Bool
	peak  atomic.Uint64 // the largest size a memory was allowed

	mu   sync.Mutex
	mems []linearMemory // freed after the run, also when instantiation failed
}

type linearMemory interface {
	experimental.LinearMemory
}

var _ experimental.MemoryAllocator = (*memoryLimit)(nil)

func newMemoryLimit(limit uint64, heap bool) *memoryLimit {
	return &memoryLimit{limit: limit, heap: heap}
}

// Allocate implements experimental.MemoryAllocator. max is the most the
// module may ever ask for; only min(max, limit) is reserved.
func (m *memoryLimit) Allocate(_, max uint64) experimental.LinearMemory {
	reserve := roundUp(min(max, m.limit), wasmPageSize)
	var mem linearMemory
	if !m.heap {
		mem = newMmapMemory(m, reserve) // nil where mmap is unavailable or failed
	}
	if mem == nil {
		mem = &heapMemory{lim: m}
	}
	m.mu.Lock()
	m.mems = append(m.mems, mem)
	m.mu.Unlock()
	return mem
}

// allow reports whether a memory may grow to size bytes, and records a
// refusal.
func (m *memoryLimit) allow(size uint64) bool {
	if size > m.limit {
		m.hit.Store(true)
		return false
	}
	if size > m.peak.Load() {
		m.peak.Store(size) // one run grows its memories from one goroutine
	}
	return true
}

// peakBytes is the largest size a memory of the run was allowed to have.
func (m *memoryLimit) peakBytes() uint64 { return m.peak.Load() }

// limitHit reports whether the module asked for more than the limit.
func (m *memoryLimit) limitHit() bool { return m.hit.Load() }

// freeAll releases every memory of the run. Free is idempotent, so this is
// safe after wazero freed them on close.
func (m *memoryLimit) freeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mem := range m.mems {
		mem.Free()
	}
	m.mems = nil
}

// heapMemory is linear memory on the Go heap, grown like wazero's default
// (copy into a larger slice), but under the limit.
type heapMemory struct {
	lim *memoryLimit
	buf []byte
}

func (h *heapMemory) Reallocate(size uint64) []byte {
	if !h.lim.allow(size) {
		return nil
	}
	if size <= uint64(cap(h.buf)) {
		h.buf = h.buf[:size]
		return h.buf
	}
	grown := min(max(size, uint64(cap(h.buf))+uint64(cap(h.buf))/4), roundUp(h.lim.limit, wasmPageSize))
	buf := make([]byte, size, grown)
	copy(buf, h.buf)
	h.buf = buf
	return buf
}

func (h *heapMemory) Free() { h.buf = nil }

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }
