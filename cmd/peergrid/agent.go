package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/runtimepolicy"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// agentFlags are `peergrid agent`'s flags.
type agentFlags struct {
	server, worker  bool
	dataDir         string
	bind, raftBind  string
	advertise       string
	join            string
	bootstrapExpect int
	name            string
	token           string
	servers         string
	cores           int
	drainGrace      time.Duration
	engines         string
	storage         bool
	storageSet      bool // --storage was given explicitly (a server keeps shards only then)
	storageBind     string
	storageAdv      string
	caFingerprint   string
	caFile          string
	pin             auth.Pin // from --ca-fingerprint or --ca-file
	workerTTL       time.Duration
	storageK        int
	storageM        int
	inlineThreshold int64
	logLevel        string
	maxPauseKeep    time.Duration
	// A volunteer's preferences (flags; prefs.toml in the data dir wins).
	prefs        prefs.Prefs
	execPriority string
	workerStream bool
}

func (m *Main) runAgent(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("agent", "agent [--server] [--worker] --data-dir DIR [flags]")
	var f agentFlags
	fs.BoolVar(&f.server, "server", false, "be a server: a voter in the Raft group, serving the HTTP API")
	fs.BoolVar(&f.worker, "worker", false, "be a worker: lease and run tasks")
	fs.StringVar(&f.dataDir, "data-dir", "", "where this agent keeps its state (required)")
	fs.StringVar(&f.bind, "bind", "127.0.0.1:7070", "server: HTTP API address")
	fs.StringVar(&f.raftBind, "raft-bind", "", "server: Raft address (default: the --bind port + 1)")
	fs.StringVar(&f.advertise, "advertise", "", "server: API address other servers use (default: https://<bind>)")
	fs.StringVar(&f.caFingerprint, "ca-fingerprint", "", "the cluster CA to trust, sha256:... (default $PEERGRID_CA_FINGERPRINT): a worker, or a server joining a running grid")
	fs.StringVar(&f.caFile, "ca-file", "", "the cluster CA's certificate to trust (PEM), instead of --ca-fingerprint (default $PEERGRID_CA_FILE)")
	fs.StringVar(&f.join, "join", "", "server: other servers' HTTP addresses, comma-separated")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "server: form a new group once this many servers know each other (default 1 without --join)")
	fs.StringVar(&f.name, "name", "", "this peer's id (default: kept in the data dir, else hostname plus a random suffix)")
	addTokenFlags(fs, &f.token, "cluster token (default $PEERGRID_TOKEN; a first lone server generates one)")
	fs.StringVar(&f.servers, "servers", "", "worker: servers' HTTP addresses, comma-separated (default $PEERGRID_SERVERS, else this agent's --bind)")
	fs.IntVar(&f.cores, "cores", 0, "worker: tasks run at once (default: all cores)")
	fs.StringVar(&f.engines, "engines", "", "worker: WebAssembly engines to offer, comma-separated (default: all this binary has: "+strings.Join(wasm.AvailableEngines(), ",")+")")
	fs.BoolVar(&f.storage, "storage", true, "keep erasure-coded shards for the grid: on by default on a worker; a server without --worker only with an explicit --storage")
	fs.StringVar(&f.storageBind, "storage-bind", "", "storage peer: address to serve shards on (port 0 picks one; default 127.0.0.1:0 when every server is on loopback, else :0, every interface)")
	fs.StringVar(&f.storageAdv, "storage-advertise", "", "storage peer: URL other peers reach the shards at (default: http://<storage-bind address>; on every interface, the local IP that routes to the servers)")
	fs.DurationVar(&f.drainGrace, "drain-grace", 30*time.Second, "worker: on SIGINT/SIGTERM, how long running tasks may finish")
	fs.DurationVar(&f.workerTTL, "worker-ttl", 15*time.Second, "server: a worker unheard this long is down and its tasks requeue")
	fs.IntVar(&f.storageK, "storage-k", 4, "server: data shards per segment of an erasure-coded blob (jobs may override)")
	fs.IntVar(&f.storageM, "storage-m", 2, "server: parity shards per segment (jobs may override)")
	fs.Int64Var(&f.inlineThreshold, "inline-threshold", 16<<10, "server: blobs this many bytes or fewer live inline in the ledger; larger ones are erasure-coded (at most 32 MiB)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&f.maxPauseKeep, "max-pause-keep", time.Hour, "server: the longest a paused worker's leases are kept")
	fs.StringVar(&f.execPriority, "executor-priority", "lowest", "worker: CPU priority of the executors: lowest (nice 19, SCHED_IDLE) or normal")
	fs.BoolVar(&f.workerStream, "worker-stream", true, "worker: heartbeats, leases and reports over one stream to the leader (false: one HTTPS request each)")
	f.prefs = prefs.Default()
	addPrefsFlags(fs, &f.prefs)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	fs.Visit(func(fl *flag.Flag) { f.storageSet = f.storageSet || fl.Name == "storage" })
	if err := f.check(m); err != nil {
		return exitError, err
	}
	log, err := m.logger(f.logLevel)
	if err != nil {
		return exitError, err
	}
	return m.agent(ctx, &f, log)
}

func (f *agentFlags) check(m *Main) error {
	if !f.server && !f.worker {
		return fmt.Errorf("%w: agent needs --server, --worker or both", errUsage)
	}
	if f.dataDir == "" {
		return fmt.Errorf("%w: agent needs --data-dir", errUsage)
	}
	f.token = firstNonEmpty(f.token, m.Getenv("PEERGRID_TOKEN"))
	pin, err := auth.PinOf(firstNonEmpty(f.caFile, m.Getenv("PEERGRID_CA_FILE")), firstNonEmpty(f.caFingerprint, m.Getenv("PEERGRID_CA_FINGERPRINT")))
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	f.pin = pin
	f.servers = firstNonEmpty(f.servers, m.Getenv("PEERGRID_SERVERS"))
	if f.server && f.bootstrapExpect == 0 && f.join == "" {
		f.bootstrapExpect = 1
	}
	if f.bootstrapExpect > server.MaxVoters {
		return fmt.Errorf("%w: --bootstrap-expect %d: at most %d voters", errUsage, f.bootstrapExpect, server.MaxVoters)
	}
	if err := server.CheckInlineThreshold(f.inlineThreshold); err != nil {
		return fmt.Errorf("%w: --inline-threshold: %v", errUsage, err)
	}
	if f.worker && !f.server && f.servers == "" {
		return fmt.Errorf("%w: a worker needs --servers (or $PEERGRID_SERVERS)", errUsage)
	}
	if f.execPriority != "lowest" && f.execPriority != "normal" {
		return fmt.Errorf("%w: --executor-priority %q: want lowest or normal", errUsage, f.execPriority)
	}
	return nil
}

// addPrefsFlags adds a flag per volunteer preference: --run-when,
// --idle-after, --max-cpu, ... (the keys with dashes).
func addPrefsFlags(fs *flag.FlagSet, p *prefs.Prefs) {
	for _, key := range prefs.Keys {
		fs.Func(strings.ReplaceAll(key, "_", "-"), "worker: "+prefs.Help[key]+" (default "+strconv.Quote(p.Get(key))+"; "+prefs.FileName+" in the data dir wins)",
			func(v string) error { return p.Set(key, v) })
	}
}

func (m *Main) agent(ctx context.Context, f *agentFlags, log *slog.Logger) (int, error) {
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return exitError, err
	}
	name, err := loadOrCreateName(f.dataDir, f.name)
	if err != nil {
		return exitError, err
	}
	log = log.With("peer", name)
	startGCPolicy(ctx, m.Getenv, log)
	switch {
	case f.worker: // an agent that also serves keeps the worker's rule: its executors have the CPUs
		defer runtimepolicy.ApplyWorkerGOMAXPROCS(m.Getenv, f.cores, log)()
	case f.server: // a server without executors (its storage peer's too): as many Ps as its load needs
		defer runtimepolicy.AdaptServerGOMAXPROCS(ctx, m.Getenv, log)()
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	if f.server {
		srv, stop, err := m.startServer(f, name, log)
		if err != nil {
			return exitError, err
		}
		stops = append(stops, stop)
		if f.servers == "" {
			f.servers = "https://" + f.bind
		}
		if f.worker || f.storageOnly() { // this process's worker trusts its server's CA, once it has one
			if f.pin, err = awaitCA(ctx, srv); err != nil {
				return exitError, err
			}
		}
	}
	if f.pin.IsZero() && (f.worker || f.storageOnly()) {
		return exitError, fmt.Errorf("%w: a worker needs the cluster CA: give --ca-fingerprint (the join line of peergrid acl token create has it) or $PEERGRID_CA_FINGERPRINT", errUsage)
	}
	if _, err := auth.LoadPeerCredential(filepath.Join(f.dataDir, "worker")); f.token == "" && err != nil {
		return exitError, errors.New("no credential: give a join token (peergrid acl token create --role worker) in $PEERGRID_TOKEN or --token-file")
	}
	if f.storageOnly() {
		return exitOK, m.runStoragePeer(ctx, f, name, log)
	}
	if !f.worker {
		<-ctx.Done()
		log.Info("stopping")
		return exitOK, nil
	}
	return exitOK, m.runWorker(ctx, f, name, log)
}

// startServer opens the ledger server and serves its API over TLS until
// stopped.
func (m *Main) startServer(f *agentFlags, name string, log *slog.Logger) (*server.Server, func(), error) {
	token, err := serverToken(f)
	if err != nil {
		return nil, nil, err
	}
	f.token = token
	raftBind, err := defaultRaftBind(f.bind, f.raftBind)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", f.bind)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", f.bind, err)
	}
	srv, err := server.NewServer(server.ServerConfig{
		Store: store.Config{ID: name, DataDir: filepath.Join(f.dataDir, "server"), RaftBind: raftBind},
		Token: token, HTTPAddr: firstNonEmpty(f.advertise, "https://"+ln.Addr().String()), Join: splitList(f.join),
		BootstrapExpect: f.bootstrapExpect, WorkerTTL: f.workerTTL, Logger: log, StorageK: f.storageK, StorageM: f.storageM,
		InlineThreshold: f.inlineThreshold, MaxPauseKeep: f.maxPauseKeep, CAPin: f.pin,
	})
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)} // failed handshakes: scanners, wrong CAs
	hs.RegisterOnShutdown(srv.CloseStreams)
	go hs.Serve(tls.NewListener(server.StreamListener(ln), srv.APITLS()))
	log.Info("server started", "https", ln.Addr().String(), "raft", raftBind, "join", f.join, "bootstrap_expect", f.bootstrapExpect)
	if ca := srv.CA(); ca != nil {
		log.Info("cluster CA", "ca_fingerprint", auth.Fingerprint(ca))
	}
	return srv, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		srv.Close()
	}, nil
}

// awaitCA waits until a server is certified (a server forming a group is
// certified once its group has a CA) and returns its CA as a pin.
func awaitCA(ctx context.Context, srv *server.Server) (auth.Pin, error) {
	for {
		if ca := srv.CA(); ca != nil {
			return auth.Pin{CA: ca}, nil
		}
		select {
		case <-ctx.Done():
			return auth.Pin{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverToken settles the cluster token: the one kept in the data dir, else
// the one given, else (a first lone server) a new one, printed once.
func serverToken(f *agentFlags) (string, error) {
	path := filepath.Join(f.dataDir, "token")
	if b, err := os.ReadFile(path); err == nil {
		kept := strings.TrimSpace(string(b))
		if f.token != "" && f.token != kept {
			return "", fmt.Errorf("--token differs from the cluster token kept in %s", path)
		}
		return kept, nil
	}
	if f.token == "" && (f.bootstrapExpect != 1 || f.join != "") {
		return "", errors.New("servers that form or join a group need the same cluster token ($PEERGRID_TOKEN or --token-file) on every server")
	}
	if f.token == "" {
		t, err := auth.LoadOrCreateToken(f.dataDir)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "generated the cluster token (kept in %s, mode 0600):\nPEERGRID_TOKEN=%s\n", path, t)
		return t, nil
	}
	return f.token, os.WriteFile(path, []byte(f.token+"\n"), 0o600)
}

func (m *Main) runWorker(ctx context.Context, f *agentFlags, name string, log *slog.Logger) error {
	vol, err := volunteer(f) // a bad preference stops the agent before it joins
	if err != nil {
		return err
	}
	defer vol.Sources.Close()
	dir := filepath.Join(f.dataDir, "worker")
	c, name, shardTLS, err := enroll(ctx, f, dir, name, f.cores)
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, worker.Config{
		ID: name, Client: c, DataDir: dir, Cores: f.cores,
		DrainGrace: f.drainGrace, Heartbeat: f.workerTTL / 4, Logger: log, Engines: splitNames(f.engines),
		StorageBind: storageBind(f), StorageAdvertise: f.storageAdv, ShardTLS: shardTLS,
		LowestPriority: f.execPriority == "lowest", Volunteer: vol,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(ctx) // returns after ctx ends and the drain completes
}

// enroll gives a worker (or a server's storage peer) its own credential:
// kept in dir, or exchanged on first start for the join token (or the
// operator token) the agent was given. It returns a client that speaks with
// it (and presents the worker's certificate), the worker id the grid gave,
// and the certificate (nil for a worker enrolled before TLS).
func enroll(ctx context.Context, f *agentFlags, dir, name string, cores int) (*client.Client, string, *tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var cred *auth.PeerCredential
	var err error
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) { // the grid may still be forming
		if cred, err = worker.Enroll(ctx, f.client(f.token), dir, name, cores); err == nil || !errors.Is(err, client.ErrUnavailable) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, "", nil, err
		case <-time.After(delay):
		}
	}
	if err != nil {
		return nil, "", nil, err
	}
	cert, err := worker.ShardTLS(dir)
	if err != nil {
		return nil, "", nil, err
	}
	c := f.client(cred.Secret)
	if cert != nil {
		c.Identify(cert)
	}
	c.WorkerStream = f.workerStream // its heartbeats, leases and reports (client's stream.go)
	return c, cred.Worker, cert, nil
}

// volunteer is the worker's obedience to its volunteer: the preferences
// from the flags with prefs.toml over them (an error in the file stops the
// start, naming the key), this machine's sources, and the control socket,
// all in the agent's data dir.
func volunteer(f *agentFlags) (*worker.Volunteer, error) {
	file := filepath.Join(f.dataDir, prefs.FileName)
	p := f.prefs
	if err := prefs.LoadFile(file, &p); err != nil {
		return nil, err
	}
	return &worker.Volunteer{Prefs: f.prefs, PrefsFile: file, Sources: prefs.SystemSources(),
		ControlSocket: filepath.Join(f.dataDir, control.SocketName)}, nil
}

// client is a client of the agent's servers with a credential, pinned to
// the cluster CA.
func (f *agentFlags) client(token string) *client.Client {
	c := client.New(f.servers, token)
	c.Pin(f.pin)
	return c
}

// loadOrCreateName is the peer id: --name (kept), else the one kept in the
// data dir, else hostname plus a short random suffix.
func loadOrCreateName(dataDir, given string) (string, error) {
	path := filepath.Join(dataDir, "name")
	if given != "" {
		return given, os.WriteFile(path, []byte(given+"\n"), 0o600)
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	host, _ := os.Hostname()
	var r [3]byte
	rand.Read(r[:])
	name := firstNonEmpty(host, "peer") + "-" + hex.EncodeToString(r[:])
	return name, os.WriteFile(path, []byte(name+"\n"), 0o600)
}

func defaultRaftBind(bind, raftBind string) (string, error) {
	if raftBind != "" {
		return raftBind, nil
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("--bind %q: %w", bind, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return "", fmt.Errorf("--bind %q: give a fixed port, or --raft-bind", bind)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

func storageBind(f *agentFlags) string {
	if !f.storage {
		return ""
	}
	if f.storageBind != "" {
		return f.storageBind
	}
	return defaultStorageBind(splitList(f.servers))
}

// defaultStorageBind is where a storage peer serves shards unless told:
// loopback when every server is on loopback (one machine: nothing else
// should reach it), else every interface, since peers on other machines
// must fetch its shards (the token guards them).
func defaultStorageBind(servers []string) string {
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil {
			return ":0"
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return ":0"
		}
	}
	return "127.0.0.1:0"
}

func splitNames(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			if !strings.Contains(v, "://") {
				v = "https://" + v
			}
			out = append(out, v)
		}
	}
	return out
}
