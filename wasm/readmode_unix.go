//go:build unix

package wasm

import (
	"os"
	"syscall"
)

// setBlocking puts f's descriptor in blocking mode or takes it out. The
// os.File stays registered with the runtime's poller: a read in blocking
// mode sleeps in the read itself, one in non-blocking mode parks on the
// poller.
func setBlocking(f *os.File, blocking bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), !blocking) }); err != nil {
		return false
	}
	return serr == nil
}
