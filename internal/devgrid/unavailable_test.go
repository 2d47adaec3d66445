package devgrid

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/worker"
)

// TestGrid_ReadFailsClearlyPastMAndRecoversWhenAPeerReturns is the grid
// version of acceptance 4: with m+1 holders of every segment stopped, a read
// through the API fails with ErrUnavailable naming the blob and the missing
// shards (and panics nowhere); when one holder comes back on its old data
// dir, the same read returns every byte.
func TestGrid_ReadFailsClearlyPastMAndRecoversWhenAPeerReturns(t *testing.T) {
	g, stops, dirs := storageGridWith(t, 6, idleRunner{})
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomBytes(6<<20+3, 11) // two segments, the last one short
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}
	// Six peers, k+m = 6: every peer holds a shard of every segment, so
	// stopping three leaves each segment m+1 shards short.
	for _, i := range []int{0, 2, 4} {
		stops[i]()
	}
	_, err = c.ReadBlob(ctx, hash, io.Discard)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("read with m+1 holders gone: want ErrUnavailable, got %v", err)
	}
	msg := err.Error()
	t.Logf("read error: %s", msg)
	if !strings.Contains(msg, hash) {
		t.Fatalf("the error does not name the blob: %s", msg)
	}
	for _, peer := range []string{"p0", "p2", "p4"} {
		if !strings.Contains(msg, peer) {
			t.Fatalf("the error does not name the missing shard on %s: %s", peer, msg)
		}
	}

	startStoragePeer(t, g, "p2", dirs[2])
	var buf bytes.Buffer
	testcluster.Eventually(t, 30*time.Second, "blob readable once p2 is back", func() bool {
		buf.Reset()
		_, err := c.ReadBlob(ctx, hash, &buf)
		return err == nil
	})
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("the blob read back after p2 returned differs from what was put")
	}
}

// startStoragePeer starts a storage peer under id on dir (a restarted peer
// finds its shards still on disk) and returns what stops it, once; the test
// stops it in cleanup if it did not.
func startStoragePeer(t *testing.T, g *Grid, id, dir string) (stop func()) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: g.Client(), DataDir: dir,
		Cores: 1, Pool: idleRunner{}, StorageBind: "127.0.0.1:0", Heartbeat: 200 * time.Millisecond,
		DrainGrace: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; w.Close() }) }
	t.Cleanup(stop)
	return stop
}

// TestGrid_FewerParityPutIsRepairedWhenPeersAppear: with only k of k+m
// storage peers live a plain put says so, a put with AllowFewerParity stores
// the blob with its parity unplaced, and once enough peers join the leader
// has the missing shards rebuilt onto distinct peers.
func TestGrid_FewerParityPutIsRepairedWhenPeersAppear(t *testing.T) {
	g, _, _ := storageGridWith(t, 4, idleRunner{})
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomBytes(5<<20, 13)
	if _, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true}); !errors.Is(err, storage.ErrNotEnoughPeers) {
		t.Fatalf("put with 4 of 6 peers: want ErrNotEnoughPeers, got %v", err)
	}
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true, AllowFewerParity: true})
	if err != nil || m == nil {
		t.Fatalf("put with AllowFewerParity: %v", err)
	}
	if len(m.Unplaced()) == 0 {
		t.Fatal("a put onto 4 peers left no shard unplaced: the test proves nothing")
	}
	startStoragePeer(t, g, "p4", t.TempDir())
	startStoragePeer(t, g, "p5", t.TempDir())
	waitAllHealthy(t, c, hash, nil)
	var buf bytes.Buffer
	if _, err := c.ReadBlob(ctx, hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read after the parity was placed: %v", err)
	}
}
