//go:build linux

package wasm

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const noDataLimit = unix.RLIM_INFINITY

// dataBytes is this process's VmData: its private writable mappings, what
// RLIMIT_DATA counts.
func dataBytes() (uint64, bool) {
	return statusField("/proc/self/status", "VmData:")
}

// dataHardLimit is this process's hard RLIMIT_DATA as last read, or 0
// before the first read. Only the executor's serve loop sets limits.
var dataHardLimit uint64

// setDataLimit sets this process's soft RLIMIT_DATA, keeping the hard
// limit, so the next task can raise it again. The hard limit is read once:
// this process never changes it, so a task costs one system call here,
// not two. Should someone lower it from outside, the refused set reads it
// again.
func setDataLimit(n uint64) {
	if dataHardLimit == 0 && !readDataHardLimit() {
		return
	}
	lim := unix.Rlimit{Cur: min(n, dataHardLimit), Max: dataHardLimit}
	if unix.Setrlimit(unix.RLIMIT_DATA, &lim) != nil && readDataHardLimit() {
		lim = unix.Rlimit{Cur: min(n, dataHardLimit), Max: dataHardLimit}
		_ = unix.Setrlimit(unix.RLIMIT_DATA, &lim)
	}
}

func readDataHardLimit() bool {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_DATA, &lim) != nil {
		return false
	}
	dataHardLimit = lim.Max
	return true
}

// statusField reads a "kB" field of a /proc status file, in bytes.
func statusField(path, field string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0, false
	}
	line := b[i+len(field):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb << 10, true
}
