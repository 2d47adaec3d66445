package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/runtimepolicy"
)

func (m *Main) runDev(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("dev", "dev [--data-dir DIR] [--bind ADDR] [--cores N] [--storage-peers N]")
	dataDir := fs.String("data-dir", defaultDataDir("dev"), "where the ledger, caches and token live")
	bind := fs.String("bind", "127.0.0.1:7070", "HTTP API address (Raft uses the next port)")
	cores := fs.Int("cores", 0, "task slots of the worker (default: all cores)")
	storagePeers := fs.Int("storage-peers", 5, "storage-only peers beside the worker (5 makes the k+m=6 a blob is coded into)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	log, err := m.logger(*logLevel)
	if err != nil {
		return exitError, err
	}
	if *storagePeers < 0 {
		return exitError, fmt.Errorf("%w: --storage-peers %d: want 0 or more", errUsage, *storagePeers)
	}
	startGCPolicy(ctx, m.Getenv, log)
	defer runtimepolicy.ApplyWorkerGOMAXPROCS(m.Getenv, *cores, log)()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: *dataDir, Bind: *bind, Cores: *cores, StoragePeers: *storagePeers, Logger: log})
	if err != nil {
		return exitError, err
	}
	defer g.Close()
	fmt.Fprintf(m.Stdout, "PEERGRID_ADDR=%s\nPEERGRID_TOKEN=%s\nPEERGRID_CA_FINGERPRINT=%s\n", g.Addr, g.Token, g.CAFingerprint)
	fmt.Fprintf(m.Stderr, "dev grid running (data in %s); in another shell:\n  export PEERGRID_ADDR=%s PEERGRID_TOKEN=%s PEERGRID_CA_FINGERPRINT=%s\n  peergrid job submit examples/src/primes/job.toml --wait   (in a checkout; or peergrid new go mytask)\ndashboard: %s/ui/ (log in with the token; the browser will warn that the grid's own CA signed the certificate)\nCtrl-C stops it.\n",
		*dataDir, g.Addr, g.Token, g.CAFingerprint, g.Addr)
	<-ctx.Done()
	fmt.Fprintln(m.Stderr, "stopping: draining the worker")
	return exitOK, g.Close()
}

// defaultDataDir is a per-user directory for a role's state.
func defaultDataDir(role string) string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "peergrid", role)
	}
	return filepath.Join(os.TempDir(), "peergrid-"+role)
}
