package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/storage"
)

// TestVolunteer_MaxDiskRefusesShardsAndTrimsTheCompileCache: over
// max_disk, the oldest compiled code goes first; still over, the shard
// store refuses new shards with 507, so writers move to another peer.
func TestVolunteer_MaxDiskRefusesShardsAndTrimsTheCompileCache(t *testing.T) {
	dir := t.TempDir()
	compile := filepath.Join(dir, "compile")
	os.MkdirAll(compile, 0o700)
	old, recent := filepath.Join(compile, "old"), filepath.Join(compile, "recent")
	os.WriteFile(old, make([]byte, 8<<10), 0o600)
	os.WriteFile(recent, make([]byte, 8<<10), 0o600)
	long := time.Now().Add(-time.Hour)
	os.Chtimes(old, long, long)

	g := newFakeGrid()
	p := with("max_disk", "12KiB")
	w := testWorker(t, g, Config{DataDir: dir, Cores: 1, Pool: newFakePauser(&fakeRunner{}), StorageBind: "127.0.0.1:0", SweepInterval: -1,
		Volunteer: &Volunteer{Prefs: p, Sources: (&fakeMachine{}).sources(), Poll: time.Millisecond}})
	runWorker(t, w)
	eventually(t, "the oldest compiled code trimmed", func() bool { _, err := os.Stat(old); return errors.Is(err, os.ErrNotExist) })
	if _, err := os.Stat(recent); err != nil {
		t.Fatalf("the recent compiled code went too: %v", err)
	}
	if got := w.shards.MaxBytes(); got != 12<<10 {
		t.Fatalf("the shard store's quota is %d, want max_disk (12 KiB)", got)
	}
	// 8 KiB of compiled code is under 12 KiB: a shard is taken...
	shard := []byte("a shard")
	c := storage.NewShardClient(w.StorageAddr(), "", nil)
	c.Caps = map[string]string{storage.OpPut: testGridCA().capFor(t, testGridCA().server, storage.OpPut, w.cfg.ID, time.Minute)}
	if err := c.Put(context.Background(), storage.Hash(shard), shard); err != nil {
		t.Fatalf("a shard under max_disk: %v", err)
	}
	// ...and once the store is over it, none.
	w.disk.used.Store(13 << 10)
	big := []byte(strings.Repeat("x", 100))
	err := c.Put(context.Background(), storage.Hash(big), big)
	if err == nil || !strings.Contains(err.Error(), "507") {
		t.Fatalf("a shard over max_disk: %v, want 507 Insufficient Storage", err)
	}
}
