package worker

import (
	"context"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/api/client"
)

// TestNew_RequiresIDClientAndDataDir: a worker needs to know who it is,
// how to reach the grid and where to keep its caches.
func TestNew_RequiresIDClientAndDataDir(t *testing.T) {
	full := Config{ID: "w1", Client: client.New("127.0.0.1:1", ""), DataDir: t.TempDir()}
	for name, cfg := range map[string]Config{
		"no id":       {Client: full.Client, DataDir: full.DataDir},
		"no client":   {ID: full.ID, DataDir: full.DataDir},
		"no data dir": {ID: full.ID, Client: full.Client},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestNew_PeerThatRunsNoTasksMustStoreShards: a storage-only peer with no
// shard address would do nothing at all, so it is refused.
func TestNew_PeerThatRunsNoTasksMustStoreShards(t *testing.T) {
	_, err := newWorker(context.Background(), Config{ID: "s1", DataDir: t.TempDir(), NoTasks: true}, newFakeGrid())
	if err == nil || !strings.Contains(err.Error(), "StorageBind") {
		t.Fatalf("New without StorageBind: %v", err)
	}
}
