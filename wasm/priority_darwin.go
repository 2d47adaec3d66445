package wasm

import (
	"fmt"
	"os/exec"

	"golang.org/x/sys/unix"
)

// startLowest starts cmd, then puts it at nice 19 and in the background
// band (PRIO_DARWIN_BG: background QoS for CPU, disk and network).
func startLowest(cmd *exec.Cmd) (warning string, err error) {
	if err := cmd.Start(); err != nil {
		return "", err
	}
	pid := cmd.Process.Pid
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, lowestNice); err != nil {
		warning = fmt.Sprintf("cannot lower executor priority to nice %d: %v", lowestNice, err)
	}
	if err := unix.Setpriority(unix.PRIO_DARWIN_PROCESS, pid, unix.PRIO_DARWIN_BG); err != nil && warning == "" {
		warning = fmt.Sprintf("cannot put executors in the background band: %v", err)
	}
	return warning, nil
}
