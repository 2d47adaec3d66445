package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/devgrid"
)

// TestDemo_StorageStepPutsLosesPeersReadsAndRepairs runs the demo's storage
// step on a grid like the demo's: the blob is coded, two peers stop, the read
// is byte-identical and repair restores full health.
func TestDemo_StorageStepPutsLosesPeersReadsAndRepairs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 1, StoragePeers: demoStoragePeers,
		WorkerTTL: 3 * time.Second, RepairGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if r := m.demoStorage(ctx, g); r.err != nil {
		t.Fatalf("storage demo: %v\n%s", r.err, out.String())
	}
	for _, want := range []string{"coded 4+2 in 3 segments over 8 storage peers", "every byte identical", "every segment has 6 healthy shards"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the demo did not say %q:\n%s", want, out.String())
		}
	}
}
