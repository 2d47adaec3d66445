//go:build unix

package runtimepolicy

import (
	"syscall"
	"time"
)

// processCPUTime is this process's CPU time so far, all threads, user and
// system.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
