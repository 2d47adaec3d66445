//go:build !unix

package proctest

import (
	"errors"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { p.Kill() }

var errNoPause = errors.New("proctest: pausing a process needs SIGSTOP (unix)")

// Pause is not supported here.
func (p *Proc) Pause() error { return errNoPause }

// Resume is not supported here.
func (p *Proc) Resume() error { return errNoPause }
