//go:build unix

package wasm

import "syscall"

// canStop: executors can be stopped and continued here (SIGSTOP, SIGCONT).
const canStop = true

func stopPID(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }
func contPID(pid int) error { return syscall.Kill(pid, syscall.SIGCONT) }
