package wasm

import (
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// startLowest starts cmd at the lowest CPU priority: nice 19 and the
// SCHED_IDLE policy, so a volunteer's own programs always run first. Both
// are per thread on Linux and a child inherits them from the thread that
// forks it, so the start happens on a thread locked to a goroutine and
// lowered first. That thread is never unlocked, so it ends with its
// goroutine (an unprivileged process could not raise it back). A policy
// the kernel refuses (a sandbox may) leaves nice 19 alone, and says so.
func startLowest(cmd *exec.Cmd) (warning string, err error) {
	done := make(chan started, 1)
	go func() { done <- lowerAndStart(cmd) }()
	s := <-done
	return s.warning, s.err
}

type started struct {
	warning string
	err     error
}

// lowerAndStart lowers the calling goroutine's thread and starts cmd from
// it; the caller's goroutine must end after it returns. The process's main
// thread is never lowered: Go parks it instead of ending it, so the start
// moves to another thread while this goroutine holds the main one.
func lowerAndStart(cmd *exec.Cmd) started {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan started, 1)
		go func() { inner <- lowerAndStart(cmd) }() // cannot run on this thread while it is locked here
		s := <-inner
		runtime.UnlockOSThread()
		return s
	}
	// Never unlocked: see startLowest.
	var s started
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, lowestNice); err != nil {
		s.warning = fmt.Sprintf("cannot lower executor priority to nice %d: %v", lowestNice, err)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, attr, 0); err != nil && s.warning == "" {
		s.warning = fmt.Sprintf("cannot give executors the SCHED_IDLE policy (running them at nice %d only): %v", lowestNice, err)
	}
	// The executor's timer slack, as startWithTimerSlack gives it (this
	// thread ends with its goroutine: nothing to put back).
	_ = setTimerSlack(executorTimerSlack)
	s.err = cmd.Start()
	return s
}
