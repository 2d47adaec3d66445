//go:build linux

package wasm

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// residentBytes is a process's resident set size, what /proc/PID/status
// calls VmRSS, read from /proc/PID/statm with raw system calls. The pool
// reads it after a task every rssCheckEvery (overgrown), while the
// process is otherwise asleep waiting for answers; a system call made
// through package os enters the Go scheduler's syscall state, which wakes
// the runtime's monitor thread (sysmon) from its deep sleep, and it then
// ticks every 20 µs for a while: each a wake-up of this process taken
// from a busy executor (BENCHMARKS.md, "Issue 15: the grid's own CPU per
// task, fourth session"). A raw call does not; opening and reading a
// procfs file never waits for I/O, so the P is held only as long as the
// read. No allocation either: it runs after every such task.
func residentBytes(pid int) (uint64, bool) {
	var pathBuf [32]byte
	path := append(pathBuf[:0], "/proc/"...)
	path = strconv.AppendInt(path, int64(pid), 10)
	path = append(path, "/statm\x00"...)
	fd, _, errno := syscall.RawSyscall6(syscall.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])),
		syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return 0, false
	}
	var buf [128]byte
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	if errno != 0 {
		return 0, false
	}
	return statmResident(buf[:n], uint64(os.Getpagesize()))
}

// atFDCWD is AT_FDCWD (-100) as openat takes it.
var atFDCWD = func() uintptr { fd := -100; return uintptr(fd) }()

// statmResident is the resident size in bytes of a /proc/PID/statm line
// ("size resident shared text lib data dt", in pages).
func statmResident(statm []byte, pageSize uint64) (uint64, bool) {
	_, rest, ok := bytes.Cut(statm, []byte(" "))
	if !ok {
		return 0, false
	}
	var pages uint64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		pages = pages*10 + uint64(c-'0')
		digits++
	}
	return pages * pageSize, digits > 0 && digits < 20
}
