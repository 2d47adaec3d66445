package wasm

import (
	"io"
	"os"
)

// pipeEnd is the pool's end of one of an executor's pipes. Where it can
// (rawPipe, Linux), it reads and writes with system calls that do not
// enter the Go scheduler's syscall state, and waits for the pipe on the
// runtime's poller. The reason is the runtime's monitor thread (sysmon):
// it sleeps deeply while every P of this process is idle, as they all are
// while a task runs and its answer is awaited on the poller, and every
// system call that enters the syscall state wakes it up again. Through
// os.File, the write of each request and the read of each answer woke it:
// two to three thread switches a task, ~40 us of this process's CPU per
// 0.5 ms task on a 2-vCPU VM (BENCHMARKS.md, "Issue 15: the executor
// round trip"), and the wake-up lands in the middle of the round trip. A
// read or write of a non-blocking pipe never blocks, so it needs no
// syscall state; only the wait does, and that is the poller's.
//
// A read in blocking mode (awaitAnswerAs, after a tiny run) goes through
// the os.File: it must enter the syscall state, as it sleeps in the read.
type pipeEnd struct {
	f        *os.File
	blocking bool // the descriptor is in blocking mode (setBlocking)
	raw      *rawPipe
}

var _ io.ReadWriter = (*pipeEnd)(nil)

func newPipeEnd(f *os.File) *pipeEnd {
	return &pipeEnd{f: f, raw: newRawPipe(f)}
}

func (p *pipeEnd) Read(b []byte) (int, error) {
	if p.blocking || p.raw == nil {
		return p.f.Read(b)
	}
	return p.raw.read(b)
}

func (p *pipeEnd) Write(b []byte) (int, error) {
	if p.blocking || p.raw == nil {
		return p.f.Write(b)
	}
	return p.raw.write(b)
}

// setBlocking puts the descriptor in blocking mode or takes it out, and
// reports whether it could; only the process's holder calls it, between
// reads.
func (p *pipeEnd) setBlocking(blocking bool) bool {
	if !setBlocking(p.f, blocking) {
		return false
	}
	p.blocking = blocking
	return true
}
