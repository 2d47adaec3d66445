package proctest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
)

// Token is the cluster token of every proctest cluster.
const Token = "proctest-token"

// Options tune a cluster of agent processes.
type Options struct {
	// WorkerTTL is passed as --worker-ttl to every agent (servers expire
	// silent workers after it; workers heartbeat at a quarter of it).
	// Default 3s.
	WorkerTTL time.Duration
	// ServerArgs and WorkerArgs are extra flags for every server or worker.
	ServerArgs, WorkerArgs []string
	// Hosts, when set, places server i on Hosts[i]: inside its network
	// namespace, bound to its IP (HTTP on port 7070, Raft on 7071) instead
	// of loopback. It needs one host per server.
	Hosts []Host
	// ClientNetns is the network namespace Client dials from ("" is the
	// test's own); Status always dials from the server's own namespace.
	ClientNetns string
}

// Host is a machine on a test network: a Linux network namespace (as `ip
// netns` names it) and the IP address its processes bind and are reached at.
type Host struct {
	Name  string
	Netns string
	IP    string
}

// Cluster is a group of `peergrid agent` processes, on loopback or on the
// hosts of a test network (Options.Hosts).
type Cluster struct {
	t       testing.TB
	opts    Options
	Servers []*Server
	Workers []*Proc
}

// Server is one `peergrid agent --server` process.
type Server struct {
	*Proc
	ID       string
	HTTPAddr string // https://127.0.0.1:port
	RaftAddr string
	DataDir  string
	Host     Host // its machine; zero on loopback
}

// StartServers starts n server agents that find each other through --join
// with --bootstrap-expect n, and waits until they agree on a leader.
func StartServers(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.WorkerTTL == 0 {
		opts.WorkerTTL = 3 * time.Second
	}
	if len(opts.Hosts) != 0 && len(opts.Hosts) != n {
		t.Fatalf("proctest: %d hosts for %d servers", len(opts.Hosts), n)
	}
	c := &Cluster{t: t, opts: opts}
	for i := range n {
		s := &Server{ID: fmt.Sprintf("s%d", i+1), DataDir: t.TempDir()}
		if len(opts.Hosts) > 0 {
			s.Host = opts.Hosts[i]
			s.HTTPAddr, s.RaftAddr = "https://"+net.JoinHostPort(s.Host.IP, "7070"), net.JoinHostPort(s.Host.IP, "7071")
		} else {
			s.HTTPAddr, s.RaftAddr = "https://"+FreeAddr(t), FreeAddr(t)
		}
		c.Servers = append(c.Servers, s)
	}
	join := strings.Join(c.HTTPAddrs(), ",")
	for _, s := range c.Servers {
		c.startServer(s, "--join", join, "--bootstrap-expect", strconv.Itoa(n))
	}
	c.Leader(60 * time.Second)
	return c
}

func (c *Cluster) startServer(s *Server, extra ...string) {
	args := []string{"agent", "--server", "--name", s.ID, "--data-dir", s.DataDir,
		"--bind", strings.TrimPrefix(s.HTTPAddr, "https://"), "--raft-bind", s.RaftAddr,
		"--token", Token, "--worker-ttl", c.opts.WorkerTTL.String()}
	args = append(append(args, extra...), c.opts.ServerArgs...)
	s.Proc = StartIn(c.t, s.Host.Netns, s.ID, args...)
}

// Restart starts an exited server again on the same addresses and data
// dir, without --join: it rejoins the group from its Raft state. Its log
// goes on in the same file.
func (c *Cluster) Restart(s *Server) {
	c.t.Helper()
	if !s.Exited() {
		c.t.Fatalf("proctest: restart %s: still running", s.ID)
	}
	c.startServer(s)
}

// AddWorker starts a `peergrid agent --worker` process that talks to every
// server, running cores tasks at once. extra flags come last, so they
// override the defaults (a wrong --token, say).
func (c *Cluster) AddWorker(name string, cores int, extra ...string) *Proc {
	c.t.Helper()
	return c.AddWorkerOn(Host{}, name, cores, extra...)
}

// AddWorkerOn is AddWorker on a host: inside its network namespace (a
// worker's shards are then served on every interface and advertised at the
// address that routes to the servers, as on a real machine). A --servers
// in extra overrides the default of every server in order.
func (c *Cluster) AddWorkerOn(h Host, name string, cores int, extra ...string) *Proc {
	c.t.Helper()
	args := []string{"agent", "--worker", "--name", name, "--data-dir", c.t.TempDir(),
		"--servers", strings.Join(c.HTTPAddrs(), ","), "--token", Token, "--cores", strconv.Itoa(cores), "--ca-file", c.CAFile(),
		"--worker-ttl", c.opts.WorkerTTL.String(),
		// Tests share a loaded machine: executors at idle priority would
		// wait behind the test processes and miss their timeouts.
		"--executor-priority", "normal"}
	args = append(append(args, c.opts.WorkerArgs...), extra...)
	w := StartIn(c.t, h.Netns, name, args...)
	c.Workers = append(c.Workers, w)
	return w
}

// HTTPAddrs lists every server's API address, running or not.
func (c *Cluster) HTTPAddrs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.HTTPAddr)
	}
	return out
}

// Running lists the servers whose process has not exited.
func (c *Cluster) Running() []*Server {
	var out []*Server
	for _, s := range c.Servers {
		if !s.Exited() {
			out = append(out, s)
		}
	}
	return out
}

// Client talks to the given servers, failing over between them; with none
// given, to every server.
func (c *Cluster) Client(servers ...*Server) *client.Client {
	if len(servers) == 0 {
		servers = c.Servers
	}
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.HTTPAddr)
	}
	cl := client.New(strings.Join(addrs, ","), Token)
	cl.Pin(c.Pin())
	cl.HTTP.Timeout = 10 * time.Second
	MoveClient(c.opts.ClientNetns, cl)
	return cl
}

// CAFile is the cluster CA's certificate, as the servers keep it (the
// group's servers share one CA; the first one certified has the file).
func (c *Cluster) CAFile() string {
	c.t.Helper()
	var path string
	Eventually(c.t, 60*time.Second, "the cluster CA", func() bool {
		for _, s := range c.Servers {
			if p := s.DataPath("server", "tls", "ca.pem"); fileExists(p) {
				path = p
				return true
			}
		}
		return false
	})
	return path
}

// Pin is the cluster CA as a client pins it.
func (c *Cluster) Pin() auth.Pin {
	c.t.Helper()
	pin, err := auth.PinOf(c.CAFile(), "")
	if err != nil {
		c.t.Fatal(err)
	}
	return pin
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Status asks one server for its own view of the group (never forwarded).
// It dials from the server's own network namespace, so it reaches a server
// that a partition has cut off (but not a paused one: that times out).
// Before the group has a CA it does not check the server's certificate,
// and sends no credential (status needs one: it then fails, and the
// caller's poll goes on).
func (s *Server) Status(ctx context.Context) (*api.Status, error) {
	var cl *client.Client
	if p := s.DataPath("server", "tls", "ca.pem"); fileExists(p) {
		pin, err := auth.PinOf(p, "")
		if err != nil {
			return nil, err
		}
		cl = client.New(s.HTTPAddr, Token)
		cl.Pin(pin)
	} else {
		cl = client.New(s.HTTPAddr, "")
		cl.Unverified()
	}
	cl.Retries = 1
	MoveClient(s.Host.Netns, cl)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Status(ctx)
}

// Leader polls until exactly one running server says it leads and every
// running server names it as leader, and returns it.
func (c *Cluster) Leader(timeout time.Duration) *Server {
	c.t.Helper()
	var leader *Server
	Eventually(c.t, timeout, "a leader every running server agrees on", func() bool {
		leader = c.agreedLeader()
		return leader != nil
	})
	return leader
}

// LeaderAmong polls until exactly one of servers says it leads and all of
// them name it (the others, cut off or paused, may think what they like),
// and returns it.
func (c *Cluster) LeaderAmong(timeout time.Duration, servers ...*Server) *Server {
	c.t.Helper()
	var leader *Server
	Eventually(c.t, timeout, "a leader the given servers agree on", func() bool {
		leader = agreedLeader(servers)
		return leader != nil
	})
	return leader
}

func (c *Cluster) agreedLeader() *Server { return agreedLeader(c.Running()) }

func agreedLeader(servers []*Server) *Server {
	var leader *Server
	ids := map[string]bool{}
	for _, s := range servers {
		st, err := s.Status(context.Background())
		if err != nil {
			return nil
		}
		ids[st.Leader] = true
		if st.RaftState == "leader" {
			if leader != nil {
				return nil
			}
			leader = s
		}
	}
	if leader == nil || len(ids) != 1 || !ids[leader.ID] {
		return nil
	}
	return leader
}

// DataPath is a path inside a server's data dir.
func (s *Server) DataPath(elem ...string) string {
	return filepath.Join(append([]string{s.DataDir}, elem...)...)
}

// MoveClient makes every connection of cl dial from inside network
// namespace ns (none: it stays where it is).
func MoveClient(ns string, cl *client.Client) {
	if ns == "" {
		return
	}
	cl.WrapDial(func(dial client.DialFunc) client.DialFunc {
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		return DialIn(ns, dial)
	})
}
