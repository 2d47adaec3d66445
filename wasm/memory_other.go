//go:build !unix

package wasm

// newMmapMemory is unavailable here: memories fall back to the Go heap,
// still under the limit.
func newMmapMemory(*memoryLimit, uint64) linearMemory { return nil }
