//go:build unix

package wasm

import (
	"sync"

	"golang.org/x/sys/unix"
)

// mmapMemory is linear memory outside the Go heap: the whole reservation is
// mapped PROT_NONE up front, so the address never moves, and growing only
// makes more of it readable and writable.
type mmapMemory struct {
	lim  *memoryLimit
	r    *region
	used uint64 // high-water mark of this run: what Free must zero
}

// region is one reservation. [0, committed) is readable, writable and,
// whenever the region is not in use, all zero.
type region struct {
	mem       []byte
	committed uint64
}

// Finished runs leave small regions here for the next run of the same
// reservation size: unmapping costs a TLB shootdown across CPUs, which made
// up half the cost of a tiny task, and zeroing a small memory in place is
// cheaper than faulting its pages in again (a Go-built module's runtime
// touches ~3 MB at start). Larger memories are unmapped, which also zeroes
// them.
const (
	reuseMaxBytes   = 4 << 20
	maxSpareRegions = 4
)

var spareRegions struct {
	sync.Mutex
	list []*region
}

// newMmapMemory reserves bytes of address space, or returns nil (the caller
// falls back to the Go heap) if the reservation fails.
func newMmapMemory(lim *memoryLimit, reserve uint64) linearMemory {
	if r := takeSpareRegion(reserve); r != nil {
		return &mmapMemory{lim: lim, r: r}
	}
	r := &region{}
	if reserve > 0 {
		mem, err := unix.Mmap(-1, 0, int(reserve), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON)
		if err != nil {
			return nil
		}
		r.mem = mem
	}
	return &mmapMemory{lim: lim, r: r}
}

func takeSpareRegion(reserve uint64) *region {
	spareRegions.Lock()
	defer spareRegions.Unlock()
	for i, r := range spareRegions.list {
		if uint64(len(r.mem)) == reserve {
			last := len(spareRegions.list) - 1
			spareRegions.list[i] = spareRegions.list[last]
			spareRegions.list = spareRegions.list[:last]
			return r
		}
	}
	return nil
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if m.r == nil || !m.lim.allow(size) || size > uint64(len(m.r.mem)) {
		return nil
	}
	if size > m.r.committed {
		if unix.Mprotect(m.r.mem[m.r.committed:size], unix.PROT_READ|unix.PROT_WRITE) != nil {
			return nil
		}
		m.r.committed = size
	}
	m.used = max(m.used, size)
	return m.r.mem[:size:size]
}

// Free zeroes a small region and keeps it for the next run, or unmaps it.
// It is idempotent.
func (m *mmapMemory) Free() {
	r := m.r
	if r == nil {
		return
	}
	m.r = nil
	if r.mem != nil && m.used <= reuseMaxBytes && keepSpareRegion(r, m.used) {
		return
	}
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
	}
}

func keepSpareRegion(r *region, used uint64) bool {
	spareRegions.Lock()
	defer spareRegions.Unlock()
	if len(spareRegions.list) >= maxSpareRegions {
		return false
	}
	clear(r.mem[:used]) // a task must never see another task's memory
	spareRegions.list = append(spareRegions.list, r)
	return true
}
