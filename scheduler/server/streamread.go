package server

import (
	"io"
	"net"
	"sync/atomic"
)

// Reading a worker stream. A heartbeat arrives alone on its stream (a
// worker sends one every quarter TTL), so reading it through net.Conn
// costs two read system calls: the one that finds the frame, and the next,
// which finds nothing and parks the reader in the netpoller. On this VM a
// system call is dear: the pair was a third of what a heartbeat cost the
// leader (BENCHMARKS.md, issue 15, fifth session).
//
// The second read is there because each net.Conn.Read starts by forgetting
// any readiness the netpoller recorded (internal/poll's prepareRead), so
// it must look at the socket itself before it may wait. A stream's reader
// instead serves its frames inside one syscall.RawConn.Read callback,
// which waits in the same netpoller without forgetting: once a read
// returns less than it asked for, the socket was empty when the kernel
// copied (a nonblocking TCP read copies all that is queued, and any
// segment held back while it copied is queued as it returns), so every
// byte that arrives after it is a new edge of the (edge-triggered)
// netpoller, which wakes the reader, or, while it is still serving, makes
// its wait return at once. The reader then parks without the read that
// would find nothing. A read that fills its buffer may have left bytes
// behind, so the reader reads again. A wake-up with nothing new (an edge
// for bytes an earlier read took) costs one read that finds nothing, as
// every frame did before.
//
// Under TLS the same holds one layer down: the listener's connections are
// streamConns (StreamListener), whose Read, while the reader holds the
// socket, is that drained-aware read, and crypto/tls keeps a record cut
// short by it (the error it returns is temporary) until the rest arrives.
// A connection of another kind, or on another OS than Linux (where the
// drained-socket rule is relied on and tested), is read with plain
// blocking reads.
//
// The callback holds the socket's read lock, and poll.FD.Close waits for
// it: while the reader is in it, nobody else may close the socket (a
// handler that ends the stream holds the stream's lock, which the reader
// may be waiting for). Ending a stream then wakes the reader with a read
// deadline in the past and it closes the socket as it leaves.

// errWouldBlock is what a drained socket's read returns: nothing now, wait
// for the netpoller. It is a temporary net.Error, so crypto/tls keeps the
// connection usable and any partial record it holds.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "socket drained: wait for more" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// socketReader reads a nonblocking socket by file descriptor, only inside
// its RawConn.Read callback.
type socketReader struct {
	fd int
	// drained says the last read emptied the socket: the next read would
	// find nothing, so it is not made.
	drained bool
	// active says the reader is in its callback: a streamConn reads
	// through the socketReader only then.
	active bool
	skips  *atomic.Int64 // counts the reads not made
}

// StreamListener wraps a TCP listener whose connections are served under
// TLS (tls.NewListener(server.StreamListener(ln), cfg)) so that worker
// streams on them read their socket as plain ones do (see streamread.go).
// Other connections are served as before.
func StreamListener(ln net.Listener) net.Listener { return streamListener{ln} }

type streamListener struct{ net.Listener }

func (l streamListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &streamConn{TCPConn: tc}, nil
	}
	return c, err
}

// streamConn is a TCP connection whose reads a worker stream's reader
// may take over (under TLS, where crypto/tls makes the reads).
type streamConn struct {
	*net.TCPConn
	raw *socketReader // set by the stream's reader, once the connection is a stream
}

func (c *streamConn) Read(p []byte) (int, error) {
	if c.raw != nil && c.raw.active {
		return c.raw.Read(p)
	}
	return c.TCPConn.Read(p)
}

// frameBuffer gathers a stream's bytes until they hold whole frames, which
// are parsed in place (stream.Parse).
type frameBuffer struct {
	b []byte // b[r:] is read and not yet served
	r int
}

const (
	// frameBufferSize is a stream's buffer: most frames (heartbeats) take a
	// few hundred bytes.
	frameBufferSize = 4 << 10
	// frameBufferKeep: a buffer grown past it for a large frame is dropped
	// once it is served, so an idle stream holds little.
	frameBufferKeep = 64 << 10
)

func (fb *frameBuffer) unread() []byte { return fb.b[fb.r:] }

// consume marks n bytes served. What they held may be overwritten by the
// next read: a frame's body that outlives it must be copied.
func (fb *frameBuffer) consume(n int) {
	fb.r += n
	if fb.r < len(fb.b) {
		return
	}
	fb.r, fb.b = 0, fb.b[:0]
	if cap(fb.b) > frameBufferKeep {
		fb.b = nil
	}
}

// fill appends what one read of src returns, first making room towards a
// frame of need bytes in all.
func (fb *frameBuffer) fill(src io.Reader, need int) (int, error) {
	fb.makeRoom(need)
	n, err := src.Read(fb.b[len(fb.b):cap(fb.b)])
	fb.b = fb.b[:len(fb.b)+n]
	return n, err
}

// makeRoom moves the unread bytes to the front and, if the buffer is
// full, grows it: to at most twice what it holds (a peer announcing a
// large frame must send it to make the server hold it, as stream.Read
// does) and at most the frame.
func (fb *frameBuffer) makeRoom(need int) {
	if fb.b == nil {
		fb.b = make([]byte, 0, frameBufferSize)
	}
	if fb.r > 0 {
		held := copy(fb.b, fb.b[fb.r:])
		fb.r, fb.b = 0, fb.b[:held]
	}
	held := len(fb.b)
	if held < cap(fb.b) {
		return
	}
	grown := make([]byte, held, max(min(need, 2*held), held+1))
	copy(grown, fb.b)
	fb.b = grown
}

// put appends bytes read before the stream started (the upgrade's reader
// held them).
func (fb *frameBuffer) put(b []byte) { fb.b = append(fb.b, b...) }
