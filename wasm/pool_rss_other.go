//go:build !linux

package wasm

// executorRSS is an executor's resident memory, where this OS tells it
// (see pool_rss_linux.go).
func executorRSS(pid int) (uint64, bool) { return residentBytes(pid) }
