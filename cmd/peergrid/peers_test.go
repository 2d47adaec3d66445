package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/devgrid"
)

// TestCLI_PeersServerRowIsSeenNowAndStoragePeersAreNotWorkers: the server's
// own row in `peers` is seen now, not at its registration time (its "last
// seen" used to grow while it was alive); a storage-only peer does not log
// "worker started".
func TestCLI_PeersServerRowIsSeenNowAndStoragePeersAreNotWorkers(t *testing.T) {
	logs := &lockedWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 1, StoragePeers: 1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := &cli{t: t, grid: g}
	started := time.Now()
	// Sample for 1.5 s: the server registered before the first sample, so a
	// registration time shown as "last seen" falls behind within the run.
	for time.Since(started) < 1500*time.Millisecond {
		asked := time.Now()
		code, out, stderr := c.run("peers", "--json")
		var peers []struct {
			ID       string    `json:"id"`
			Roles    []string  `json:"roles"`
			LastSeen time.Time `json:"last_seen"`
		}
		if err := json.Unmarshal([]byte(out), &peers); code != exitOK || err != nil {
			t.Fatalf("peers --json: exit %d %v %s", code, err, stderr)
		}
		found := false
		for _, p := range peers {
			if p.ID == "dev-server" {
				found = true
				if p.LastSeen.Before(asked.Add(-500 * time.Millisecond)) {
					t.Fatalf("the server's own row was last seen %v before it was asked", asked.Sub(p.LastSeen))
				}
			}
		}
		if !found {
			t.Fatalf("no dev-server row: %s", out)
		}
		time.Sleep(100 * time.Millisecond) // the sampling interval, not a wait for anything
	}
	said := logs.String()
	if !strings.Contains(said, `msg="worker started" peer=dev-worker`) {
		t.Fatalf("the worker did not log its start:\n%s", said)
	}
	if strings.Contains(said, `msg="worker started" peer=dev-storage`) {
		t.Fatalf("a storage-only peer logged \"worker started\":\n%s", said)
	}
}
