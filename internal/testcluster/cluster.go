// Package testcluster is the one harness for tests that need a Raft group of
// ledger servers in one process: real TCP on loopback (with links a test can
// cut), real BoltDB in temp dirs, short Raft timeouts, and helpers that poll
// with a deadline instead of sleeping.
package testcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/scheduler/store"
)

// Token is the cluster token of every test cluster.
const Token = "testcluster-token"

// Options tune a cluster.
type Options struct {
	SnapshotThreshold uint64
	WorkerTTL         time.Duration
	LeaseSlack        time.Duration
	MaxPauseKeep      time.Duration
	LeaderWait        time.Duration
	// CommandTypes, by node id, is what that server says it applies (see
	// server.ServerConfig.CommandTypes): an older server in a mixed group.
	CommandTypes map[string][]int
	Logger       *slog.Logger // default: discards
}

// Cluster is N ledger servers forming one Raft group.
type Cluster struct {
	t     testing.TB
	opts  Options
	Net   *Network
	Nodes []*Node

	mu       sync.Mutex
	raftAddr map[string]string // raft address -> id, shared by every stream layer
}

// Node is one server; Server is nil while it is stopped.
type Node struct {
	ID       string
	Dir      string
	RaftAddr string
	HTTPAddr string
	Server   *server.Server
	// CommandTypes is what the server says it applies (nil: all it knows);
	// a change takes effect at its next start.
	CommandTypes []int

	httpLn net.Listener
	httpSv *http.Server
	raftLn net.Listener
}

// New starts n servers that find each other through --join with
// bootstrap-expect n, and waits for a leader.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{t: t, opts: opts, Net: NewNetwork(), raftAddr: map[string]string{}}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, c.newNode(fmt.Sprintf("s%d", i+1)))
	}
	join := c.httpAddrs()
	for _, node := range c.Nodes {
		c.start(node, join, n)
	}
	t.Cleanup(c.Close)
	c.WaitRegistered()
	return c
}

func (c *Cluster) newNode(id string) *Node {
	node := &Node{ID: id, Dir: c.t.TempDir(), CommandTypes: c.opts.CommandTypes[id]}
	node.httpLn = listen(c.t)
	node.raftLn = listen(c.t)
	node.HTTPAddr = "https://" + node.httpLn.Addr().String()
	node.RaftAddr = node.raftLn.Addr().String()
	c.mu.Lock()
	c.raftAddr[node.RaftAddr] = id
	c.mu.Unlock()
	return node
}

func listen(t testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (c *Cluster) httpAddrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.HTTPAddr)
	}
	return out
}

// start opens a node's server on its listeners (reopened after a stop).
func (c *Cluster) start(node *Node, join []string, expect int) {
	c.t.Helper()
	if node.raftLn == nil {
		node.raftLn = relisten(c.t, node.RaftAddr)
		node.httpLn = relisten(c.t, strings.TrimPrefix(node.HTTPAddr, "https://"))
	}
	layer := &streamLayer{net: c.Net, id: node.ID, ln: node.raftLn, addr: c.raftAddr, mu: &c.mu}
	srv, err := server.NewServer(server.ServerConfig{
		Store: store.Config{ID: node.ID, DataDir: node.Dir, Fast: true, StreamLayer: layer,
			SnapshotThreshold: c.opts.SnapshotThreshold, Logger: c.opts.Logger},
		Token: Token, HTTPAddr: node.HTTPAddr, Join: join, BootstrapExpect: expect,
		WorkerTTL: c.opts.WorkerTTL, LeaseSlack: c.opts.LeaseSlack, MaxPauseKeep: c.opts.MaxPauseKeep, LeaderWait: c.opts.LeaderWait, Logger: c.opts.Logger,
		CommandTypes: node.CommandTypes,
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", node.ID, err)
	}
	node.Server = srv
	node.httpSv = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(c.opts.Logger.Handler(), slog.LevelDebug)}
	node.httpSv.RegisterOnShutdown(srv.CloseStreams)
	go node.httpSv.Serve(tls.NewListener(server.StreamListener(node.httpLn), srv.APITLS()))
}

// relisten binds an address a stopped node used, retrying while the kernel
// still holds it.
func relisten(t testing.TB, addr string) net.Listener {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
	}
	t.Fatalf("relisten %s: %v", addr, err)
	return nil
}

// Stop shuts a node down without leaving the group (a crash, as far as the
// others can tell).
func (c *Cluster) Stop(node *Node) {
	if node.Server == nil {
		return
	}
	node.httpSv.Close() // at once, open connections too: like a crash
	node.Server.Close()
	node.Server, node.httpLn, node.raftLn = nil, nil, nil
}

// Restart starts a stopped node again from its data dir, without --join.
func (c *Cluster) Restart(node *Node) {
	c.t.Helper()
	c.start(node, nil, 0)
}

// RestartJoining starts a stopped node again from its data dir, with
// --join naming every node (as an operator restarts a group whose servers
// must find each other again).
func (c *Cluster) RestartJoining(node *Node) {
	c.t.Helper()
	c.start(node, c.httpAddrs(), 0)
}

// AddServer starts a new server that joins the running group.
func (c *Cluster) AddServer() *Node {
	c.t.Helper()
	node := c.newNode(fmt.Sprintf("s%d", len(c.Nodes)+1))
	c.Nodes = append(c.Nodes, node)
	c.start(node, c.httpAddrs(), 0)
	return node
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		c.Stop(n)
	}
}

// Running lists the nodes that are up.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Server != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader polls until exactly one running node leads and every running node
// agrees on it, and returns it.
func (c *Cluster) Leader() *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, 20*time.Second, "a leader all running servers agree on", func() bool {
		leader = c.agreedLeader(c.Running())
		return leader != nil
	})
	return leader
}

// LeaderOf polls until one node of nodes leads and all of nodes agree.
func (c *Cluster) LeaderOf(nodes []*Node) *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, 20*time.Second, "a leader among the given servers", func() bool {
		leader = c.agreedLeader(nodes)
		return leader != nil
	})
	return leader
}

func (c *Cluster) agreedLeader(nodes []*Node) *Node {
	var leader *Node
	for _, n := range nodes {
		if n.Server.Store().IsLeader() {
			if leader != nil {
				return nil
			}
			leader = n
		}
	}
	if leader == nil {
		return nil
	}
	for _, n := range nodes {
		if _, id := n.Server.Store().Leader(); id != leader.ID {
			return nil
		}
	}
	return leader
}

// WaitRegistered polls until there is a leader and every running server
// knows its HTTP address (so a follower can forward to it at once).
func (c *Cluster) WaitRegistered() {
	c.t.Helper()
	c.Leader()
	Eventually(c.t, 20*time.Second, "every server knows the leader's address", func() bool {
		for _, n := range c.Running() {
			info, err := c.Client(n).ServerInfo(context.Background())
			if err != nil || info.LeaderHTTP == "" {
				return false
			}
		}
		return true
	})
}

// Followers are the running nodes that do not lead.
func (c *Cluster) Followers() []*Node {
	leader := c.Leader()
	var out []*Node
	for _, n := range c.Running() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// Client talks to the given nodes (failing over between them), trusting
// the group's CA.
func (c *Cluster) Client(nodes ...*Node) *client.Client {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.HTTPAddr)
	}
	cl := client.New(strings.Join(addrs, ","), Token)
	cl.Pin(c.Pin())
	return cl
}

// Pin is the group's CA, as a client pins it (zero until a server has it).
func (c *Cluster) Pin() auth.Pin {
	for _, n := range c.Nodes {
		if n.Server != nil {
			if ca := n.Server.CA(); ca != nil {
				return auth.Pin{CA: ca}
			}
		}
	}
	return auth.Pin{}
}

// WaitConverged polls until every given node has applied everything the
// leader has committed and holds an identical ledger (canonical state hash),
// and returns the hash. Comparing without the applied index would pass
// vacuously on servers that have not replayed their log yet.
func (c *Cluster) WaitConverged(nodes ...*Node) string {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.Running()
	}
	target := c.Barrier(nodes...)
	var hashes []string
	Eventually(c.t, 30*time.Second, "servers converge on one ledger", func() bool {
		hashes = hashes[:0]
		for _, n := range nodes {
			if n.Server.Store().Raft().AppliedIndex() < target {
				return false
			}
			hashes = append(hashes, n.Server.Store().FSM().StateHash())
		}
		sort.Strings(hashes)
		return hashes[0] == hashes[len(hashes)-1]
	})
	return hashes[0]
}

// Barrier commits a barrier on the leader of nodes (the running nodes if
// none are named) and returns the leader's applied index after it. Once it
// returns, every entry any leader ever appended is either committed or can
// never be: an unacknowledged proposal left in a cut-off leader's log is
// settled one way or the other. A leader change while it runs (short Raft
// timeouts on a loaded machine) means a barrier on the next leader.
func (c *Cluster) Barrier(nodes ...*Node) uint64 {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.Running()
	}
	var target uint64
	Eventually(c.t, 30*time.Second, "a barrier on the leader", func() bool {
		leader := c.LeaderOf(nodes)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := leader.Server.Store().Barrier(ctx); err != nil {
			c.t.Logf("barrier on the leader %s: %v (trying again)", leader.ID, err)
			return false
		}
		target = leader.Server.Store().Raft().AppliedIndex()
		return true
	})
	return target
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
