//go:build !linux

package wasm

import "os/exec"

// startWithTimerSlack starts cmd. Timer slack is Linux's (see
// timerslack_linux.go).
func startWithTimerSlack(cmd *exec.Cmd) error { return cmd.Start() }
