package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
)

// demoStoragePeers is how many storage-only peers the demo grid runs beside
// its worker: 8 storage peers in all, so a 4+2 blob survives losing two and
// repair still has live peers that hold no shard of a segment to rebuild on.
const demoStoragePeers = 7

// demoBlobSize spans three 4 MiB segments, the last one short.
const demoBlobSize = 9<<20 + 12345

// demoStorage shows erasure coding at work: a blob is coded 4+2 across the
// storage peers, two of them are stopped, the blob still reads back byte for
// byte, and the leader has the lost shards rebuilt on live peers.
func (m *Main) demoStorage(ctx context.Context, g *devgrid.Grid) demoResult {
	start := time.Now()
	r := demoResult{name: "storage"}
	r.err = m.runStorageDemo(ctx, g)
	r.elapsed = time.Since(start)
	return r
}

func (m *Main) runStorageDemo(ctx context.Context, g *devgrid.Grid) error {
	c := g.Client()
	data := make([]byte, demoBlobSize)
	rng := rand.New(rand.NewPCG(42, 42))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	hash, man, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if man == nil {
		return errors.New("put: the blob was kept inline, not erasure-coded")
	}
	fmt.Fprintf(m.Stdout, "   put %.1f MiB: blob %s…, coded %d+%d in %d segments over %d storage peers\n",
		float64(len(data))/(1<<20), hash[:12], man.K, man.M, len(man.Segments), demoStoragePeers+1)

	stopped := map[string]bool{}
	for _, p := range g.Storage[:man.M] {
		p.Stop()
		stopped[p.ID] = true
	}
	lost := 0
	for _, seg := range man.Segments {
		for _, sh := range seg.Shards {
			if stopped[sh.Peer] {
				lost++
			}
		}
	}
	fmt.Fprintf(m.Stdout, "   stopped %d storage peers, taking %d of the blob's %d shards with them\n", man.M, lost, len(man.Segments)*(man.K+man.M))

	var got bytes.Buffer
	if _, err := c.ReadBlob(ctx, hash, &got); err != nil {
		return fmt.Errorf("read with %d peers stopped: %w", man.M, err)
	}
	if !bytes.Equal(got.Bytes(), data) || storage.Hash(got.Bytes()) != hash {
		return errors.New("read back different bytes")
	}
	fmt.Fprintf(m.Stdout, "   read it back from the peers left: every byte identical\n")

	repairStart := time.Now()
	if err := waitRepaired(ctx, c, hash, stopped, time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "   repair rebuilt the lost shards on live peers in %s: every segment has %d healthy shards on distinct peers\n",
		time.Since(repairStart).Round(100*time.Millisecond), man.K+man.M)
	return nil
}

// waitRepaired polls blob stat until every shard is healthy on a distinct
// peer that is not among the stopped ones.
func waitRepaired(ctx context.Context, c *client.Client, hash string, stopped map[string]bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		st, err := c.StatBlob(ctx, hash)
		if err == nil && fullyHealthy(st, stopped) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("blob %s not fully repaired after %s (last stat error: %v)", hash, timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func fullyHealthy(st *client.BlobStat, stopped map[string]bool) bool {
	for _, seg := range st.Segments {
		seen := map[string]bool{}
		for _, sh := range seg.Shards {
			if !sh.Healthy || stopped[sh.Peer] || seen[sh.Peer] {
				return false
			}
			seen[sh.Peer] = true
		}
	}
	return true
}
