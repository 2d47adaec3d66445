//go:build !linux && !darwin && !windows

package wasm

import (
	"fmt"
	"os/exec"
	"syscall"
)

// startLowest starts cmd, then puts it at nice 19 (per process on the BSDs).
func startLowest(cmd *exec.Cmd) (warning string, err error) {
	if err := cmd.Start(); err != nil {
		return "", err
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, lowestNice); err != nil {
		warning = fmt.Sprintf("cannot lower executor priority to nice %d: %v", lowestNice, err)
	}
	return warning, nil
}
