package wasm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrStdinFile is wrapped by the error of a run whose Request.StdinPath
// cannot be opened: not the task's fault.
var ErrStdinFile = errors.New("cannot open the task's stdin file")

// errStdinRead is what the task's reader returns for a failed read of its
// stdin file: both engines give the task EIO for it.
var errStdinRead = errors.New("stdin file read failed")

// stdinBuffer is the read buffer of a stdin file: tasks that read a few
// bytes at a time do not cost a syscall each.
const stdinBuffer = 64 << 10

// openStdin returns the reader a run's task reads its stdin from, and a
// func that releases it (call it once the module can no longer read, on
// every path). Stdin bytes are read in place; a StdinPath is opened here
// and streamed, so an input of any size costs stdinBuffer of memory.
func openStdin(req *Request) (io.Reader, func(), error) {
	if req.StdinPath == "" {
		return bytes.NewReader(req.Stdin), func() {}, nil
	}
	f, err := os.Open(req.StdinPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStdinFile, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", req.StdinPath)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrStdinFile, err)
	}
	return &stdinFile{br: bufio.NewReaderSize(f, stdinBuffer)}, func() { _ = f.Close() }, nil
}

// stdinFile reads a stdin file as a bytes.Reader reads stdin bytes: every
// read is full until the end of the input, whatever the file system does,
// so the task sees the same reads either way. It is not an *os.File on
// purpose: wazero would then present the host file itself to the task
// (its stat, its poll) instead of the sandbox's stdin.
type stdinFile struct {
	br  *bufio.Reader
	err error // sticky: a failed read fails every later one
}

func (s *stdinFile) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := io.ReadFull(s.br, p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		s.err = io.EOF
		if n > 0 {
			err = nil
		} else {
			err = io.EOF
		}
	default:
		s.err = errStdinRead
		err = errStdinRead
	}
	return n, err
}
