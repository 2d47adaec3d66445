package devgrid

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
)

// TestGrid_CommittedManifestIsWriteOnce is the "replaced manifest" attack
// through the API: a manifest of a stored blob with random shard hashes
// (segment hashes recomputed, as they are only hashes of those) is refused
// with 409 naming why, nothing changes, and the blob still reads back. A
// retry of the identical manifest is accepted; the same content on other
// peers, or coded with another k and m, put again, keeps the committed
// manifest; a "repair" no leader
// ordered is refused, and so is one of a blob that has no manifest.
func TestGrid_CommittedManifestIsWriteOnce(t *testing.T) {
	g, _ := storageGrid(t, 6, noRepair)
	c := g.Client()
	ctx := context.Background()
	data := randomBytes(1<<20, 31)
	_, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}

	forged := m.Clone()
	for s := range forged.Segments {
		for i := range forged.Segments[s].Shards {
			forged.Segments[s].Shards[i].Hash = storage.Hash(randomBytes(16, uint64(100+s*16+i)))
		}
		forged.Segments[s].Hash = storage.SegmentHash(forged.K, forged.SegmentLen(s), forged.Segments[s].Shards)
	}
	err = c.PutManifest(ctx, forged, true)
	if !isConflict(err, "write-once") || !strings.Contains(err.Error(), "shard 0 hash") {
		t.Fatalf("forged manifest: %v, want 409 saying manifests are write-once and which shard differs", err)
	}
	checkCommitted(t, c, m, data)

	if err := c.PutManifest(ctx, m, true); err != nil {
		t.Fatalf("identical re-put: %v", err)
	}
	checkCommitted(t, c, m, data)

	elsewhere := m.Clone() // the same bytes, placed on other peers
	sh := elsewhere.Segments[0].Shards
	sh[0].Peer, sh[1].Peer = sh[1].Peer, sh[0].Peer
	if err := c.PutManifest(ctx, elsewhere, false); err != nil {
		t.Fatalf("the same content put again: %v", err)
	}
	checkCommitted(t, c, m, data)

	if _, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{K: 2, M: 1}); err != nil {
		t.Fatalf("the same bytes coded with k=2 m=1: %v", err) // a job's output equal to a stored blob
	}
	checkCommitted(t, c, m, data)
	bigger := m.Clone()
	bigger.Size++ // the same blob cannot have another size
	last := len(bigger.Segments) - 1
	bigger.Segments[last].Hash = storage.SegmentHash(bigger.K, bigger.SegmentLen(last), bigger.Segments[last].Shards)
	if err := c.PutManifest(ctx, bigger, false); !isConflict(err, "size") {
		t.Fatalf("another size: %v, want 409", err)
	}
	checkCommitted(t, c, m, data)

	if err := c.CommitRepair(ctx, elsewhere); !isConflict(err, "no repair of it is ordered") {
		t.Fatalf("unordered repair: %v, want 409 saying no repair is ordered", err)
	}
	checkCommitted(t, c, m, data)

	ghost := m.Clone() // a "repair" of a blob with no manifest (say, collected) must not create one
	ghost.Hash = storage.Hash([]byte("a blob since collected"))
	if err := c.CommitRepair(ctx, ghost); !isConflict(err, "no committed manifest to repair") {
		t.Fatalf("repair of a blob with no manifest: %v, want 409", err)
	}
	if _, err := c.Manifest(ctx, ghost.Hash); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the ghost's manifest: %v, want none", err)
	}
}

// TestGrid_AnotherCodingOfAStoredBlobMakesNoOwner: a stranger who knows a
// blob's hash and size (not its bytes) writes a manifest of that size
// coded with another k and m, with made-up shard hashes. It is refused
// with 409 saying how to own the blob (put it with the committed coding),
// the stranger still cannot read the blob or its manifest, and the blob is
// unchanged.
func TestGrid_AnotherCodingOfAStoredBlobMakesNoOwner(t *testing.T) {
	g, _ := storageGrid(t, 6, noRepair)
	ctx := context.Background()
	data := randomBytes(1<<20, 41)
	_, m, err := g.Client().PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}
	tok, err := g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	stranger := g.ClientWith(tok.Secret)
	if _, err := stranger.Manifest(ctx, m.Hash); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the stranger reads the manifest before: %v", err)
	}
	forged := m.Clone() // the same size, coded k=2 m=1, shard hashes made up
	forged.K, forged.M = 2, 1
	for s := range forged.Segments {
		forged.Segments[s].Shards = forged.Segments[s].Shards[:3]
		for i := range forged.Segments[s].Shards {
			forged.Segments[s].Shards[i].Hash = storage.Hash(randomBytes(16, uint64(500+s*8+i)))
			forged.Segments[s].Shards[i].Root = ""
		}
		forged.Segments[s].Hash = storage.SegmentHash(forged.K, forged.SegmentLen(s), forged.Segments[s].Shards)
	}
	err = stranger.PutManifest(ctx, forged, true)
	if !isConflict(err, "to own it, put it with those") {
		t.Fatalf("another coding from a stranger: %v, want 409 saying how to own the blob", err)
	}
	if _, err := stranger.Manifest(ctx, m.Hash); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("the stranger reads the manifest after: %v, want not found", err)
	}
	checkCommitted(t, g.Client(), m, data)
}

func isConflict(err error, says string) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict && strings.Contains(se.Message, says)
}

// checkCommitted fails unless the committed manifest is still m and the
// blob still reads back as data.
func checkCommitted(t *testing.T, c *client.Client, m *storage.Manifest, data []byte) {
	t.Helper()
	got, err := c.Manifest(context.Background(), m.Hash)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("committed manifest: %+v %v, want it unchanged", got, err)
	}
	var buf bytes.Buffer
	faults, err := c.ReadBlob(context.Background(), m.Hash, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), data) || len(faults) != 0 {
		t.Fatalf("read back: %v, faults %v", err, faults)
	}
}

// TestGrid_BlobStatCatchesAPeerThatHoldsNothing: a storage peer that takes
// every shard it is sent, keeps none, and answers HEAD 200 (a real HTTP
// server) is reported unhealthy by blob stat on every shard it was given;
// the honest peers' shards are healthy.
func TestGrid_BlobStatCatchesAPeerThatHoldsNothing(t *testing.T) {
	g, _ := storageGrid(t, 5, noRepair)
	c := g.Client()
	var puts atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
		}
	}))
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	beat := func() error {
		_, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "fake", Address: fake.URL, Storage: true, StorageOnly: true, Held: []api.TaskRef{}})
		return err
	}
	if err := beat(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			_ = beat()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	testcluster.Eventually(t, 10*time.Second, "six storage peers live", func() bool {
		peers, err := c.StoragePeers(ctx, false)
		return err == nil && len(peers) == 6
	})
	data := randomBytes(3<<20, 41)
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put: %v", err)
	}
	if puts.Load() == 0 || !slices.Contains(m.Peers(), "fake") {
		t.Fatalf("the fake peer was given no shard (%d puts, peers %v)", puts.Load(), m.Peers())
	}
	st, err := c.StatBlob(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	for i, seg := range st.Segments {
		for _, sh := range seg.Shards {
			if sh.Healthy == (sh.Peer == "fake") {
				t.Fatalf("segment %d shard %d on %s: healthy %v (%s)", i, sh.Index, sh.Peer, sh.Healthy, sh.Error)
			}
		}
	}
}
