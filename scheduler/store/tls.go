package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftTLS secures Raft between servers: every connection is mutually
// authenticated TLS, each side presenting a server certificate of the
// cluster CA (a worker's certificate, or one of another grid, is refused by
// the configs' VerifyConnection).
type RaftTLS struct {
	Server *tls.Config // accepting connections from other servers
	Client *tls.Config // dialling other servers
}

// tlsStreamLayer wraps Raft's connections in TLS.
type tlsStreamLayer struct {
	raft.StreamLayer
	tls *RaftTLS
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// Accept hands Raft a TLS connection; its handshake runs on the first read,
// in the goroutine Raft gives the connection, under a deadline so a peer
// that opens a connection and says nothing cannot hold it.
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, l.tls.Server)}, nil
}

// Dial connects to a server and completes the handshake within timeout.
func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, l.tls.Client)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft TLS to %s: %w", address, err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// handshakeConn completes the TLS handshake, under a deadline, before the
// first read.
type handshakeConn struct {
	*tls.Conn
	done bool
}

const raftHandshakeTimeout = 10 * time.Second

func (c *handshakeConn) Read(p []byte) (int, error) {
	if !c.done {
		c.done = true
		c.Conn.SetDeadline(time.Now().Add(raftHandshakeTimeout))
		if err := c.Conn.Handshake(); err != nil {
			c.Conn.Close()
			return 0, err
		}
		c.Conn.SetDeadline(time.Time{})
	}
	return c.Conn.Read(p)
}

// tcpStreamLayer is Raft's plain TCP: a listener and a dialler.
type tcpStreamLayer struct {
	net.Listener
	advertise net.Addr
}

func newTCPStreamLayer(bind string) (*tcpStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &tcpStreamLayer{Listener: ln, advertise: ln.Addr()}, nil
}

func (t *tcpStreamLayer) Addr() net.Addr { return t.advertise }

func (t *tcpStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}
