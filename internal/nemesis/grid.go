package nemesis

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// gridConfig shapes a grid on a test network.
type gridConfig struct {
	// seed, when seeded, chose the run's schedule: every failure names it.
	seed    int64
	seeded  bool
	servers int // default 3
	workers int
	// workerTTL is every agent's --worker-ttl (default 5s).
	workerTTL time.Duration
	// workerServers gives worker i its --servers in order (default: every
	// server, in order); the group has its leader when it is called.
	workerServers func(g *grid, i int) []*proctest.Server
}

// grid is real `peergrid agent` processes, each on its own host of a Net:
// servers s1.., workers w1.., and a host c1 for the clients. Its directory
// keeps the processes' logs and the test's history; it is removed when the
// test passes and kept, with its path and the seed printed, when it fails.
type grid struct {
	t       *testing.T
	seed    int64
	seeded  bool
	net     *Net
	cluster *proctest.Cluster
	servers []*proctest.Server
	workers []*gridWorker
	client  proctest.Host
	dir     string
	ttl     time.Duration
	module  string // hash of the tiny echo module, uploaded at start
}

type gridWorker struct {
	name    string
	host    proctest.Host
	proc    *proctest.Proc
	servers []string // its --servers, in order
}

func startGrid(t *testing.T, cfg gridConfig) *grid {
	t.Helper()
	if cfg.servers == 0 {
		cfg.servers = 3
	}
	if cfg.workerTTL == 0 {
		cfg.workerTTL = 5 * time.Second
	}
	g := &grid{t: t, seed: cfg.seed, seeded: cfg.seeded, ttl: cfg.workerTTL}
	g.keepDirOnFailure()
	var names []string
	for i := range cfg.servers {
		names = append(names, fmt.Sprintf("s%d", i+1))
	}
	for i := range cfg.workers {
		names = append(names, fmt.Sprintf("w%d", i+1))
	}
	names = append(names, "c1")
	g.net = NewNet(t, names...)
	g.client = g.net.Host("c1")
	var hosts []proctest.Host
	for i := range cfg.servers {
		hosts = append(hosts, g.net.Host(fmt.Sprintf("s%d", i+1)))
	}
	g.cluster = proctest.StartServers(t, cfg.servers, proctest.Options{WorkerTTL: cfg.workerTTL, Hosts: hosts, ClientNetns: g.client.Netns})
	g.servers = g.cluster.Servers
	for i := range cfg.workers {
		w := &gridWorker{name: fmt.Sprintf("w%d", i+1)}
		w.host = g.net.Host(w.name)
		order := g.servers
		if cfg.workerServers != nil {
			order = cfg.workerServers(g, i)
		}
		for _, s := range order {
			w.servers = append(w.servers, s.HTTPAddr)
		}
		w.proc = g.cluster.AddWorkerOn(w.host, w.name, 1, "--servers", strings.Join(w.servers, ","))
		g.workers = append(g.workers, w)
	}
	g.uploadModule()
	return g
}

// keepDirOnFailure makes the run's directory and registers (first, so it
// runs last, after every process has ended) keeping or removing it.
func (g *grid) keepDirOnFailure() {
	stamp := time.Now().Format("20060102-150405")
	name := strings.NewReplacer("/", "_", " ", "_").Replace(g.t.Name())
	if g.seeded {
		name = fmt.Sprintf("%d", g.seed)
	}
	g.dir = filepath.Join(os.TempDir(), fmt.Sprintf("peergrid-nemesis-%s-%s", name, stamp))
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		switch {
		case !g.t.Failed():
			os.RemoveAll(g.dir)
		case g.seeded:
			g.t.Logf("seed %d: the run failed; its process logs and history are kept in %s (rerun it: PEERGRID_NEMESIS_SEED=%d)", g.seed, g.dir, g.seed)
		default:
			g.t.Logf("the test failed; its process logs are kept in %s", g.dir)
		}
	})
	proctest.KeepLogsIn(g.t, filepath.Join(g.dir, "logs"))
}

// fatalf and errorf name the seed, if any, in every failure.
func (g *grid) fatalf(format string, args ...any) {
	g.t.Helper()
	g.t.Fatal(g.prefix() + fmt.Sprintf(format, args...))
}

func (g *grid) errorf(format string, args ...any) {
	g.t.Helper()
	g.t.Error(g.prefix() + fmt.Sprintf(format, args...))
}

func (g *grid) prefix() string {
	if g.seeded {
		return fmt.Sprintf("seed %d: ", g.seed)
	}
	return ""
}

// newClient is a Go client on the client host, given servers in order.
func (g *grid) newClient(servers ...*proctest.Server) *gridClient {
	if len(servers) == 0 {
		servers = g.servers
	}
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.HTTPAddr)
	}
	return newClient(g.client.Netns, g.cluster.Pin(), addrs...)
}

// uploadModule puts the tiny echo module, which every job runs.
func (g *grid) uploadModule() {
	mod := examples.Tiny()
	g.module = storage.Hash(mod)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.newClient().PutBlob(ctx, g.module, mod); err != nil {
		g.fatalf("upload the module: %v", err)
	}
}

// echoSpec is a job of n tasks of the echo module: task i of a job named
// name writes echoOf(name, i).
func (g *grid) echoSpec(name string, n int) *tasks.JobSpec {
	return &tasks.JobSpec{Name: name, ModuleHash: g.module, Args: []string{"{index}", name}, Tasks: n,
		Timeout: 5 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: 100}
}

func echoOf(name string, i int) string { return fmt.Sprintf("%d %s\n", i, name) }

// server returns a server by id.
func (g *grid) server(id string) *proctest.Server {
	for _, s := range g.servers {
		if s.ID == id {
			return s
		}
	}
	g.fatalf("no server %s", id)
	return nil
}

// others are the servers but the given ones.
func (g *grid) others(not ...*proctest.Server) []*proctest.Server {
	var out []*proctest.Server
	for _, s := range g.servers {
		skip := false
		for _, n := range not {
			skip = skip || s == n
		}
		if !skip {
			out = append(out, s)
		}
	}
	return out
}

// cli runs a peergrid CLI command on the client host, as a user there
// would, killing it after limit; it returns how long it took.
func (g *grid) cli(limit time.Duration, args ...string) (stdout, stderr string, took time.Duration, err error) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	stdout, stderr, err = proctest.RunIn(ctx, g.t, g.client.Netns, append(args, "--token", proctest.Token, "--ca-file", g.cluster.CAFile())...)
	took = time.Since(start)
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer in %s (killed): %w", limit, ctx.Err())
	}
	return stdout, stderr, took, err
}

// addrs lists servers' addresses, comma-separated, for --addr.
func addrs(servers ...*proctest.Server) string {
	var out []string
	for _, s := range servers {
		out = append(out, s.HTTPAddr)
	}
	return strings.Join(out, ",")
}

// leader waits for a leader every running server agrees on.
func (g *grid) leader() *proctest.Server {
	g.t.Helper()
	return g.cluster.Leader(30 * time.Second)
}
