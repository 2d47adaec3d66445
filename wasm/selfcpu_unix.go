//go:build unix

package wasm

import (
	"syscall"
	"time"
)

// selfCPUTime is this process's CPU time so far, all threads, user and
// system; 0 if it cannot be read.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
