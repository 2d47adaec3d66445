package devgrid

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestDevGrid_StoragePeersRegisterWithTheirShardAddress: Start returns once
// the worker and every storage-only peer are live storage peers, and
// `peers` shows a storage-only peer at the address it serves shards on.
func TestDevGrid_StoragePeersRegisterWithTheirShardAddress(t *testing.T) {
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), Cores: 1, StoragePeers: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := g.Client()
	live, err := c.StoragePeers(context.Background(), false)
	if err != nil || len(live) != 3 {
		t.Fatalf("storage peers right after Start: %+v %v, want the worker and 2 storage-only peers", live, err)
	}
	peers, err := c.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range g.Storage {
		var found bool
		for _, p := range peers {
			if p.ID == sp.ID {
				found = true
				if !strings.HasPrefix(p.Address, "https://127.0.0.1:") || strings.Join(p.Roles, ",") != "storage" {
					t.Fatalf("storage-only peer listed as %+v: want role storage at its shard address", p)
				}
			}
		}
		if !found {
			t.Fatalf("%s not among the peers: %+v", sp.ID, peers)
		}
	}
}
