//go:build unix && !linux

package proctest

import (
	"os"
	"syscall"
)

// sysProcAttr puts a child in its own process group, so cleanup can kill
// what it started too.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process and everything in its process group.
func killGroup(p *os.Process) {
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	p.Kill()
}

// Pause stops the process (SIGSTOP) until Resume: it holds its sockets and
// leases but does nothing, as a machine that froze.
func (p *Proc) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() error { return p.Signal(syscall.SIGCONT) }
