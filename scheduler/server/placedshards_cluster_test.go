package server_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
)

// TestCluster_PlacedShardsThroughAFollower: a storage peer asking a
// follower which of its shards are still placed on it gets the leader's
// consistent answer, right after the manifest was committed through
// another follower.
func TestCluster_PlacedShardsThroughAFollower(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	ctx := context.Background()
	_, refs, conns := storagetest.MemPeers(4)
	m, err := storage.Put(ctx, bytes.NewReader(storagetest.RandomBytes(1, 300)), storage.PutOptions{K: 2, M: 1, SegmentSize: 128,
		Peers: refs, Dial: storagetest.DialMap(conns)})
	if err != nil {
		t.Fatal(err)
	}
	fs := c.Followers()
	if err := c.Client(fs[0]).PutManifest(ctx, m, true); err != nil {
		t.Fatal(err)
	}
	on := map[string][]string{} // peer -> its shards
	var all []string
	for _, seg := range m.Segments {
		for _, sh := range seg.Shards {
			on[sh.Peer] = append(on[sh.Peer], sh.Hash)
			all = append(all, sh.Hash)
		}
	}
	orphan := storage.Hash([]byte("a shard of a blob since collected"))
	for _, p := range []string{"p0", "p1", "p2", "p3"} {
		placed, err := c.Client(fs[1]).PlacedShards(ctx, p, append(slices.Clone(all), orphan))
		if err != nil {
			t.Fatal(err)
		}
		want := on[p]
		slices.Sort(want)
		want = slices.Compact(want)
		slices.Sort(placed)
		if !slices.Equal(placed, want) {
			t.Fatalf("placed on %s: %v, want %v", p, placed, want)
		}
	}
}
