//go:build cgo && (linux || darwin) && (amd64 || arm64)

package wasm

// wasmtime's pooling instance allocator, which wasmtime-go's Go API does
// not expose: the C API's functions are declared here and called on the
// raw config (the static library that wasmtime-go links has them all).
// wasmtime_layout_test.go checks the one assumption this makes of
// wasmtime-go: that a *wasmtime.Config points at its C pointer.

/*
#include <stdint.h>
#include <stddef.h>

typedef struct wasm_config_t wasm_config_t;
typedef struct wasmtime_pooling_allocation_config_t wasmtime_pooling_allocation_config_t;

extern wasmtime_pooling_allocation_config_t *wasmtime_pooling_allocation_config_new(void);
extern void wasmtime_pooling_allocation_config_delete(wasmtime_pooling_allocation_config_t *);
extern void wasmtime_pooling_allocation_config_total_core_instances_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_memories_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_total_tables_set(wasmtime_pooling_allocation_config_t *, uint32_t);
extern void wasmtime_pooling_allocation_config_max_memory_size_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_table_elements_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_config_table_keep_resident_set(wasmtime_pooling_allocation_config_t *, size_t);
extern void wasmtime_pooling_allocation_strategy_set(wasm_config_t *, const wasmtime_pooling_allocation_config_t *);
extern void wasmtime_config_memory_guard_size_set(wasm_config_t *, uint64_t);
extern void wasmtime_config_memory_reservation_set(wasm_config_t *, uint64_t);
*/
import "C"

import (
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Pool sizes: instances at once per engine (an executor runs one; an
// in-process engine as many as its callers), the largest memory a task may
// have (the sandbox's cap is at most 4 GiB; bounds-checked code has 64 KiB
// less, see checkedMaxMemory), and table entries (a Go-built module's
// function table has some thousands).
const (
	poolInstances    = 64
	poolMaxMemory    = 4 << 30
	poolTableEntries = 1 << 20
	// poolKeepResident is how much of a memory stays mapped when its slot
	// is returned: it is zeroed in place instead of being given back to
	// the kernel, so the next task does not fault its pages in again. On
	// this VM a page fault costs several microseconds: the 2.6 MB Go-built
	// spin module spent ~3.4 ms of a 1,000-round task faulting in the Go
	// runtime's first 3 MB, and ~0.5-1 ms with them kept; zeroing them
	// when the store closes costs less than the faults (BENCHMARKS.md).
	poolKeepResident = 4 << 20
	// poolTableKeepResident is the same for a table: a Go-built module's
	// function table (~48 KiB for the 2.6 MB spin module) is zeroed in
	// place, instead of given back with madvise, whose TLB flush
	// interrupted the other core and cost ~0.1 ms a task here (and the
	// entries touched were faulted in again). 1 MiB is 128 Ki entries.
	poolTableKeepResident = 1 << 20
)

// usePoolingAllocator makes engines built from cfg take instances, memories
// and tables from pre-reserved slots that are reused (a memory keeps its
// copy-on-write image mapped, and its first poolKeepResident bytes
// resident; a table its first poolTableKeepResident), instead of mapping
// and unmapping them per task. For modeChecked the memories have no guard
// pages and a reservation under 4 GiB, which makes the compiled code check
// every access against the memory's current size and lets wasmtime leave
// the pages a task grew into read-write for the next task (it re-protects
// them at each instantiate only where code relies on guard pages).
func usePoolingAllocator(cfg *wasmtime.Config, mode memoryMode) {
	raw := *(**C.wasm_config_t)(unsafe.Pointer(cfg))
	maxMemory := uint64(poolMaxMemory)
	if mode == modeChecked {
		maxMemory = checkedMaxMemory
		C.wasmtime_config_memory_guard_size_set(raw, 0)
		C.wasmtime_config_memory_reservation_set(raw, C.uint64_t(maxMemory))
	}
	p := C.wasmtime_pooling_allocation_config_new()
	defer C.wasmtime_pooling_allocation_config_delete(p)
	C.wasmtime_pooling_allocation_config_total_core_instances_set(p, poolInstances)
	C.wasmtime_pooling_allocation_config_total_memories_set(p, poolInstances)
	C.wasmtime_pooling_allocation_config_total_tables_set(p, poolInstances)
	C.wasmtime_pooling_allocation_config_max_memory_size_set(p, C.size_t(maxMemory))
	C.wasmtime_pooling_allocation_config_table_elements_set(p, poolTableEntries)
	C.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(p, poolKeepResident)
	C.wasmtime_pooling_allocation_config_table_keep_resident_set(p, poolTableKeepResident)
	C.wasmtime_pooling_allocation_strategy_set(raw, p)
}
