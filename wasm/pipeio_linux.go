//go:build linux

package wasm

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// rawPipe reads and writes a non-blocking pipe with raw system calls,
// waiting on the runtime's poller when the pipe is empty or full (see
// pipeEnd). One goroutine at a time uses it (the process's holder).
type rawPipe struct {
	rc    syscall.RawConn
	buf   []byte // what the call in progress reads into or writes from
	n     int    // bytes read, or written so far
	errno syscall.Errno

	readFn, writeFn func(fd uintptr) bool // made once: no allocation per call
}

// newRawPipe returns nil if f gives no raw access to its descriptor or
// the descriptor is in blocking mode: a raw call that blocks would hold
// its P, and stop the world's next stop, until it returned.
func newRawPipe(f *os.File) *rawPipe {
	rc, err := f.SyscallConn()
	if err != nil || !nonBlocking(rc) {
		return nil
	}
	r := &rawPipe{rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeAll
	return r
}

func nonBlocking(rc syscall.RawConn) bool {
	var flags uintptr
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) { flags, _, errno = syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0) })
	return err == nil && errno == 0 && flags&syscall.O_NONBLOCK != 0
}

func (r *rawPipe) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := r.transfer(b, false)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// transfer reads into b, or writes b, through the poller (readOnce,
// writeAll): how much it moved, and the poller's error or the syscall's.
// The method values are kept in r (readFn, writeFn): one made per call
// would be allocated per task.
func (r *rawPipe) transfer(b []byte, writing bool) (int, error) {
	r.buf, r.n, r.errno = b, 0, 0
	var err error
	op := "read"
	if writing {
		err, op = r.rc.Write(r.writeFn), "write"
	} else {
		err = r.rc.Read(r.readFn)
	}
	n, errno := r.n, r.errno
	r.buf = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, &os.PathError{Op: op, Path: "executor pipe", Err: errno}
	}
	return n, nil
}

// readOnce reads what the pipe holds, up to len(r.buf); false: nothing
// yet, wait.
func (r *rawPipe) readOnce(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			r.n = int(n)
		default:
			r.errno = errno
		}
		return true
	}
}

func (r *rawPipe) write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return r.transfer(b, true)
}

// writeAll writes the rest of r.buf; false: the pipe is full, wait.
func (r *rawPipe) writeAll(fd uintptr) bool {
	for r.n < len(r.buf) {
		rest := r.buf[r.n:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			r.n += int(n)
		default:
			r.errno = errno
			return true
		}
	}
	return true
}
