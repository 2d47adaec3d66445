package testcluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Network is the Raft traffic between a cluster's servers: real TCP on
// loopback, with links that a test can cut and heal. Each dialled connection
// starts with the dialler's id, so the accepting side knows the link and can
// refuse it; cutting a link also closes its open connections.
type Network struct {
	mu    sync.Mutex
	cut   map[[2]string]bool
	conns map[[2]string][]net.Conn
}

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	return &Network{cut: map[[2]string]bool{}, conns: map[[2]string][]net.Conn{}}
}

func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Cut severs the links between every server in group and every other server.
func (n *Network) Cut(group, rest []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range group {
		for _, b := range rest {
			l := link(a, b)
			n.cut[l] = true
			for _, c := range n.conns[l] {
				c.Close()
			}
			delete(n.conns, l)
		}
	}
}

// Heal restores every link.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

func (n *Network) isCut(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[link(a, b)]
}

func (n *Network) track(a, b string, c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[link(a, b)] {
		return false
	}
	n.conns[link(a, b)] = append(n.conns[link(a, b)], c)
	return true
}

var errLinkCut = errors.New("testcluster: link cut")

// streamLayer is one server's end of the Network.
type streamLayer struct {
	net  *Network
	id   string
	ln   net.Listener
	addr map[string]string // raft address -> server id, filled by the cluster
	mu   *sync.Mutex
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		from, err := readID(c)
		if err != nil || !s.net.track(from, s.id, c) {
			c.Close()
			continue
		}
		return c, nil
	}
}

func (s *streamLayer) Close() error   { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	to := s.addr[string(address)]
	s.mu.Unlock()
	if s.net.isCut(s.id, to) {
		return nil, fmt.Errorf("%w: %s -> %s", errLinkCut, s.id, to)
	}
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if err := writeID(c, s.id); err != nil || !s.net.track(s.id, to, c) {
		c.Close()
		return nil, fmt.Errorf("%w: %s -> %s", errLinkCut, s.id, to)
	}
	return c, nil
}

func writeID(w io.Writer, id string) error {
	b := binary.AppendUvarint(nil, uint64(len(id)))
	_, err := w.Write(append(b, id...))
	return err
}

func readID(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return "", err
	}
	id := make([]byte, b[0])
	_, err := io.ReadFull(c, id)
	return string(id), err
}
