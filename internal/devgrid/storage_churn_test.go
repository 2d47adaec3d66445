package devgrid

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
)

// churnPeer is one storage peer of the churn test, which it stops and
// restarts on the same data dir.
type churnPeer struct {
	id, dir string
	stop    func() // nil while the peer is down
}

// TestGrid_StorageChurn: ten storage peers come and go (never more than m=2
// down at once, each back on its old data dir) while blobs are put and read
// back, and the leader repairs behind them. Every put succeeds, every read
// returns the bytes that were put, and once the churn stops every blob is
// back to k+m healthy shards on distinct peers and reads back intact.
func TestGrid_StorageChurn(t *testing.T) {
	const peers, m = 10, 2
	churnFor := 10 * time.Second
	if testing.Short() {
		churnFor = 3 * time.Second
	}
	g, _ := storageGrid(t, 0)
	c := g.Client()
	ps := make([]*churnPeer, peers)
	for i := range ps {
		ps[i] = &churnPeer{id: fmt.Sprintf("c%d", i), dir: filepath.Join(t.TempDir(), "peer")}
		ps[i].stop = startStoragePeer(t, g, ps[i].id, ps[i].dir)
	}
	testcluster.Eventually(t, 10*time.Second, "every storage peer registered", func() bool {
		live, err := c.StoragePeers(context.Background(), false)
		return err == nil && len(live) == peers
	})

	ctx, cancel := context.WithTimeout(context.Background(), churnFor)
	defer cancel()
	var mu sync.Mutex
	blobs := map[string]uint64{} // hash -> seed of its bytes (see churnBlob)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- putWhileChurning(ctx, c, &mu, blobs) })
	wg.Go(func() { errs <- readWhileChurning(ctx, c, &mu, blobs) })
	churn(ctx, t, g, ps, m)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps {
		if p.stop == nil {
			p.stop = startStoragePeer(t, g, p.id, p.dir)
		}
	}
	t.Logf("%d blobs put during %s of churn", len(blobs), churnFor)
	if len(blobs) == 0 {
		t.Fatal("no blob was put: the test proves nothing")
	}
	for h, seed := range blobs {
		waitAllHealthy(t, c, h, nil)
		var buf bytes.Buffer
		if _, err := c.ReadBlob(context.Background(), h, &buf); err != nil || !bytes.Equal(buf.Bytes(), churnBlob(seed)) {
			t.Fatalf("blob %s after the churn: %v (or its bytes differ)", h, err)
		}
	}
}

// churn stops a random live peer or restarts a random down one every
// 100-400 ms until ctx ends, keeping at most m down.
func churn(ctx context.Context, t *testing.T, g *Grid, ps []*churnPeer, m int) {
	r := rand.New(rand.NewPCG(3, 4))
	for ctx.Err() == nil {
		var up, down []*churnPeer
		for _, p := range ps {
			if p.stop != nil {
				up = append(up, p)
			} else {
				down = append(down, p)
			}
		}
		if len(down) < m && (len(down) == 0 || r.IntN(2) == 0) {
			p := up[r.IntN(len(up))]
			p.stop()
			p.stop = nil
		} else {
			p := down[r.IntN(len(down))]
			p.stop = startStoragePeer(t, g, p.id, p.dir)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+r.IntN(300)) * time.Millisecond):
		}
	}
}

// churnBlob is the content of the blob with this seed: 0 to 6 MiB (one to
// two segments, and sometimes inline).
func churnBlob(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	return randomBytes(r.IntN(6<<20), seed)
}

func putWhileChurning(ctx context.Context, c *client.Client, mu *sync.Mutex, blobs map[string]uint64) error {
	for seed := uint64(1); ctx.Err() == nil; seed++ {
		data := churnBlob(seed)
		h, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
		if ctx.Err() != nil {
			return nil // cut short by the end of the churn, not by it
		}
		if err != nil {
			return fmt.Errorf("put %d bytes during churn: %w", len(data), err)
		}
		if h != storage.Hash(data) {
			return fmt.Errorf("put %d bytes: hash %s, want %s", len(data), h, storage.Hash(data))
		}
		mu.Lock()
		blobs[h] = seed
		mu.Unlock()
	}
	return nil
}

func readWhileChurning(ctx context.Context, c *client.Client, mu *sync.Mutex, blobs map[string]uint64) error {
	r := rand.New(rand.NewPCG(5, 6))
	for ctx.Err() == nil {
		mu.Lock()
		var h string
		var seed uint64
		for h, seed = range blobs { // a random one: map order
			if r.IntN(3) == 0 {
				break
			}
		}
		mu.Unlock()
		if h == "" {
			time.Sleep(10 * time.Millisecond) // nothing put yet
			continue
		}
		var buf bytes.Buffer
		_, err := c.ReadBlob(ctx, h, &buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read blob %s during churn: %w", h, err)
		}
		if !bytes.Equal(buf.Bytes(), churnBlob(seed)) {
			return fmt.Errorf("read blob %s during churn: bytes differ", h)
		}
	}
	return nil
}
