package wasm

import (
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// executorTimerSlack is the timer slack of every thread of an executor:
// how late the kernel may wake it from a timed sleep, to batch wake-ups.
//
// Why: an executor is a Go process running a task in one long cgo call.
// For as long as that call lasts, the Go runtime's monitor thread (sysmon)
// wakes every 20 µs at first (its sleep, at Linux's default slack of
// 50 µs, lasted ~100 µs here), and on a CPU of its own, a pinned executor's
// CPU, each wake-up preempts the task. Two executors, one per CPU, running
// 5 ms Go-built tasks made 22-27 context switches a task, 10-15 of them
// sysmon's; with 2 ms of slack 8-11, 3 of them sysmon's, for 4-6% less
// executor CPU a task (BENCHMARKS.md, "an executor's own wake-ups";
// TestPool_ExecutorsBarelyWakeThemselvesUnderLongTasks).
//
// Nothing in an executor needs a timer to be finer: a task's clock is
// virtual (poll_oneoff on clocks does not wait), and the watchdogs' limits
// are whole seconds. The pool's own process keeps Linux's default.
const executorTimerSlack = 2 * time.Millisecond

// startWithTimerSlack starts cmd from the calling goroutine's thread, its
// timer slack set to executorTimerSlack for the fork. A child takes its
// timer slack from the thread that forks it, and each thread it makes from
// its maker, so every thread of the executor, sysmon included, has it. (A
// process cannot set another thread's slack without CAP_SYS_NICE: only the
// fork carries it.) It runs on the caller's thread, not a new goroutine's,
// because that thread may be bound to the executor's CPU (startOnCPU). The
// thread gets its own slack back after; if it could not, it stays locked
// to the caller's goroutine (ending with it if that goroutine ends), so no
// other goroutine runs with the executor's slack.
func startWithTimerSlack(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	was, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || setTimerSlack(executorTimerSlack) != nil {
		runtime.UnlockOSThread()
		return cmd.Start() // the default slack: slower, not wrong
	}
	err = cmd.Start()
	if setTimerSlack(time.Duration(was)) == nil {
		runtime.UnlockOSThread()
	}
	return err
}

// setTimerSlack sets the calling thread's timer slack.
func setTimerSlack(d time.Duration) error {
	return unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0)
}
