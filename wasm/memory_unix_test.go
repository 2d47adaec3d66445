//go:build unix

package wasm

import (
	"testing"
	"unsafe"
)

// Linear memory really comes from mmap, grows in place, and refuses (and
// records) growth past the limit.
func TestMmapMemory_GrowsInPlaceUpToTheLimit(t *testing.T) {
	lim := newMemoryLimit(4*wasmPageSize, false)
	mem := lim.Allocate(0, 1<<32)
	mm, ok := mem.(*mmapMemory)
	if !ok {
		t.Fatalf("allocator gave %T, want *mmapMemory", mem)
	}
	if len(mm.r.mem) != 4*wasmPageSize {
		t.Fatalf("reserved %d bytes, want only the limit", len(mm.r.mem))
	}
	one := mem.Reallocate(wasmPageSize)
	one[wasmPageSize-1] = 1
	four := mem.Reallocate(4 * wasmPageSize)
	if unsafe.SliceData(one) != unsafe.SliceData(four) || four[wasmPageSize-1] != 1 {
		t.Fatal("memory moved or lost its contents when it grew")
	}
	four[len(four)-1] = 2 // writable up to the end
	if lim.limitHit() {
		t.Fatal("limit hit within the limit")
	}
	if mem.Reallocate(5*wasmPageSize) != nil || !lim.limitHit() {
		t.Fatal("grew past the limit, or did not record it")
	}
	lim.freeAll()
	if mm.r != nil {
		t.Fatal("freeAll did not free")
	}
	mem.Free() // idempotent
}

// A region kept for the next run comes back all zero.
func TestMmapMemory_ReusedRegionIsZero(t *testing.T) {
	const reserve = 3 * wasmPageSize // a size no other test reserves
	first := newMemoryLimit(reserve, false)
	mem := first.Allocate(0, reserve)
	b := mem.Reallocate(2 * wasmPageSize)
	for i := range b {
		b[i] = 0xff
	}
	first.freeAll()
	second := newMemoryLimit(reserve, false)
	again := second.Allocate(0, reserve).Reallocate(reserve)
	if unsafe.SliceData(again) != unsafe.SliceData(b) {
		t.Fatal("the region was not reused")
	}
	for i, c := range again {
		if c != 0 {
			t.Fatalf("byte %d of a reused region is %#x", i, c)
		}
	}
	second.freeAll()
}
