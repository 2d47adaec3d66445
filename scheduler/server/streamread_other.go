//go:build !linux

package server

import (
	"io"
	"net"
	"syscall"
)

// Read is never called: socketOf finds no socket here, so streams are
// read with blocking reads (see streamread.go).
func (sr *socketReader) Read(p []byte) (int, error) { return 0, errWouldBlock }

// socketOf finds no socket to read from a RawConn callback on this
// platform (the drained-socket rule is relied on, and tested, on Linux only).
func socketOf(net.Conn) (syscall.RawConn, *socketReader, io.Reader, bool) {
	return nil, nil, nil, false
}
