package wasm

import (
	"os/exec"
	"syscall"
)

// idlePriorityClass is Windows' IDLE_PRIORITY_CLASS process creation flag.
const idlePriorityClass = 0x00000040

// startLowest starts cmd in the idle priority class.
func startLowest(cmd *exec.Cmd) (warning string, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= idlePriorityClass
	return "", cmd.Start()
}
