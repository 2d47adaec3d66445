//go:build linux || darwin

package wasm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errCompiling: another process holds a disk cache entry's lock, compiling
// it, and the caller asked not to wait (not the module's fault: KindOf is
// "", so compileCache keeps no result and the next call tries again).
var errCompiling = errors.New("another executor is compiling this module")

// lockCacheEntry takes the advisory lock (flock) on the lock file beside
// the disk cache entry at path, so that one of the processes sharing the
// cache compiles an entry while the others wait for it, or, if not wait,
// returns errCompiling while another holds it. The kernel drops the lock
// of a process that dies, so an executor killed mid-compile holds up no
// one. Where no lock can be had (a cache directory that cannot be
// written), it returns a no-op unlock: compiling without the lock costs
// only a compile. Lock files stay: removing one while another process
// waits on it would let a third lock a new file beside it.
func lockCacheEntry(path string, wait bool) (unlock func(), err error) {
	noop := func() {}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return noop, nil
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return noop, nil
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return func() { f.Close() }, nil // closing the last descriptor drops the lock
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w (%s)", errCompiling, filepath.Base(path))
	default:
		f.Close()
		return noop, nil
	}
}
