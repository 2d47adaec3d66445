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
// It asks through the file's raw descriptor: f.Fd() would put the pipe in
// blocking mode, which its raw writes must not meet (rawPipe).
func pipeCapacity(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return minPipeCapacity
	}
	var n uintptr
	var errno syscall.Errno
	if rc.Control(func(fd uintptr) { n, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, fGetPipeSize, 0) }) != nil ||
		errno != 0 || int(n) < minPipeCapacity {
		return minPipeCapacity
	}
	return int(n)
}
