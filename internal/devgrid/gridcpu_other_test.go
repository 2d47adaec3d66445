//go:build darwin

package devgrid

import (
	"syscall"
	"time"
)

// gridUsage is what this process used (see the Linux version; executors'
// CPU is not read here).
type gridUsage struct {
	user, sys, executors time.Duration
	wakeups              int64
	idle, busy           time.Duration // not read here
}

func (u gridUsage) others() time.Duration { return 0 }

// measureGridUsage is what this process used while f ran.
func measureGridUsage(f func()) gridUsage {
	before := selfUsage()
	f()
	return selfUsage().sub(before)
}

func selfUsage() gridUsage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return gridUsage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), wakeups: ru.Nvcsw}
}

func (u gridUsage) sub(v gridUsage) gridUsage {
	return gridUsage{user: u.user - v.user, sys: u.sys - v.sys, executors: u.executors - v.executors, wakeups: u.wakeups - v.wakeups}
}
