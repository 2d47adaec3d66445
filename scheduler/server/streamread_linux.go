//go:build linux

package server

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
)

// Read reads what the socket holds with one system call, or returns
// errWouldBlock without one once a read has emptied it.
func (sr *socketReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if sr.drained {
		sr.skips.Add(1)
		return 0, errWouldBlock
	}
	for {
		n, err := syscall.Read(sr.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			sr.drained = true
			return 0, errWouldBlock
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		sr.drained = n < len(p)
		return n, nil
	}
}

// socketOf finds the socket under a hijacked connection that a stream's
// reader can serve from its RawConn.Read callback: the RawConn, the
// socketReader that reads it, and what the frames are read from (the
// socketReader itself, or the TLS connection over it). ok is false for a
// connection of another kind.
func socketOf(conn net.Conn) (rc syscall.RawConn, sr *socketReader, src io.Reader, ok bool) {
	var tc *net.TCPConn
	switch c := conn.(type) {
	case *net.TCPConn:
		tc = c
	case *streamConn:
		tc = c.TCPConn
	case *tls.Conn:
		sc, isStream := c.NetConn().(*streamConn)
		if !isStream {
			return nil, nil, nil, false
		}
		if rc, err := sc.SyscallConn(); err == nil {
			sr = &socketReader{}
			sc.raw = sr
			return rc, sr, c, true
		}
		return nil, nil, nil, false
	default:
		return nil, nil, nil, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, nil, nil, false
	}
	sr = &socketReader{}
	return rc, sr, sr, true
}
