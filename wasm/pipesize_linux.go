//go:build linux

package wasm

import (
	"os"
	"syscall"
)

// fGetPipeSize is F_GETPIPE_SZ (linux/fcntl.h).
const fGetPipeSize = 1032

// pipeCapacity is how many bytes the pipe f holds (64 KiB unless the
// user's pipes passed pipe-user-pages-soft), or minPipeCapacity if unknown.
func pipeCapacity(f *os.File) int {
	n, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fGetPipeSize, 0)
	if errno != 0 || int(n) < minPipeCapacity {
		return minPipeCapacity
	}
	return int(n)
}
