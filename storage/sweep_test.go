package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/storage"
)

// sweepFixture is a store holding n shards (one per segment of a blob put
// with k=1, m=0, so the test does not depend on how shards are hashed), all
// aged past the grace but the last one (young).
func sweepFixture(t *testing.T, n int) (*storage.ShardStore, []string) {
	t.Helper()
	s, err := storage.OpenShardStore(t.TempDir(), storage.ShardStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const seg = 16
	var data []byte
	for i := 0; i < n; i++ {
		data = append(data, []byte(fmt.Sprintf("shard %9d", i))...) // seg bytes each
	}
	m, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{K: 1, M: 0, SegmentSize: seg,
		Peers: []storage.PeerRef{{ID: "self"}}, Dial: func(storage.PeerRef) storage.ShardPeer { return storage.LocalPeer{Store: s} }})
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	old := time.Now().Add(-2 * time.Hour)
	for i, sg := range m.Segments {
		h := sg.Shards[0].Hash
		if i < n-1 {
			if err := os.Chtimes(s.Path(h), old, old); err != nil {
				t.Fatal(err)
			}
		}
		hashes = append(hashes, h)
	}
	if len(hashes) != n {
		t.Fatalf("%d shards, want %d", len(hashes), n)
	}
	return s, hashes
}

func held(t *testing.T, s *storage.ShardStore, h string) bool {
	t.Helper()
	ok, err := s.Has(h)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestSweep_DeletesOldUnplacedShardsOnly: of the old shards, the ones the
// ledger places here stay and the rest go; a young unplaced shard stays.
// Batches are asked in order and cover every old shard once.
func TestSweep_DeletesOldUnplacedShardsOnly(t *testing.T) {
	s, hashes := sweepFixture(t, 8)
	young := hashes[7]
	placed := map[string]bool{hashes[0]: true, hashes[3]: true, hashes[5]: true}
	var asked []string
	calls := 0
	res, err := s.Sweep(context.Background(), storage.SweepOptions{Grace: time.Hour, Batch: 3,
		Placed: func(_ context.Context, batch []string) ([]string, error) {
			calls++
			if len(batch) > 3 {
				t.Errorf("batch of %d, want at most 3", len(batch))
			}
			asked = append(asked, batch...)
			var out []string
			for _, h := range batch {
				if placed[h] {
					out = append(out, h)
				}
			}
			return append(out, young), nil // an answer naming a shard not asked about changes nothing
		}})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(asked, young) || len(asked) != 7 || calls != 3 {
		t.Fatalf("asked about %d shards in %d calls (young asked: %v)", len(asked), calls, slices.Contains(asked, young))
	}
	if res.Held != 8 || res.Checked != 7 || res.Deleted != 4 || res.Bytes != 4*16 {
		t.Fatalf("result %+v", res)
	}
	for i, h := range hashes {
		want := placed[h] || h == young
		if got := held(t, s, h); got != want {
			t.Fatalf("shard %d held=%v, want %v", i, got, want)
		}
	}
}

// TestSweep_DeletesNothingWhenTheLedgerCannotBeAsked: an error on any batch
// (here the last) means no shard is deleted, not even the orphans of
// batches already answered.
func TestSweep_DeletesNothingWhenTheLedgerCannotBeAsked(t *testing.T) {
	s, hashes := sweepFixture(t, 6)
	calls := 0
	res, err := s.Sweep(context.Background(), storage.SweepOptions{Batch: 2,
		Placed: func(_ context.Context, batch []string) ([]string, error) {
			calls++
			if calls == 3 {
				return nil, errors.New("no cluster leader")
			}
			return nil, nil // nothing placed here
		}})
	if err == nil || res.Deleted != 0 {
		t.Fatalf("sweep with an unreachable ledger: %+v, %v", res, err)
	}
	for i, h := range hashes {
		if !held(t, s, h) {
			t.Fatalf("shard %d deleted although the ledger could not be asked", i)
		}
	}
}

// TestSweep_KeepsAShardRewrittenWhileItWasAsked: a put that rewrites an
// orphan (a new blob with the same shard) between the question and the
// delete makes it young again, so it stays.
func TestSweep_KeepsAShardRewrittenWhileItWasAsked(t *testing.T) {
	s, hashes := sweepFixture(t, 3)
	res, err := s.Sweep(context.Background(), storage.SweepOptions{
		Placed: func(ctx context.Context, batch []string) ([]string, error) {
			data, err := s.Get(ctx, hashes[0])
			if err == nil {
				err = s.Put(ctx, hashes[0], bytes.NewReader(data))
			}
			return nil, err
		}})
	if err != nil || res.Deleted != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if !held(t, s, hashes[0]) || held(t, s, hashes[1]) || !held(t, s, hashes[2]) {
		t.Fatalf("held: %v %v %v, want true false true", held(t, s, hashes[0]), held(t, s, hashes[1]), held(t, s, hashes[2]))
	}
}

// TestSweep_DeletesQuarantinedShardsAfterTheKeep: a shard found corrupt is
// quarantined and kept for QuarantineKeep (from when it was quarantined,
// not from when it was written), then a sweep deletes it, even when the
// ledger cannot be asked.
func TestSweep_DeletesQuarantinedShardsAfterTheKeep(t *testing.T) {
	s, hashes := sweepFixture(t, 3)
	rotten := hashes[0] // written two hours ago (see sweepFixture)
	if err := os.WriteFile(s.Path(rotten), []byte("rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.Path(rotten), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), rotten); !errors.Is(err, storage.ErrCorruptShard) {
		t.Fatalf("reading a rotten shard: %v, want ErrCorruptShard", err)
	}
	quarantined := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(s.Path(rotten)))), "quarantine", rotten)
	if _, err := os.Stat(quarantined); err != nil {
		t.Fatalf("the corrupt shard is not in quarantine: %v", err)
	}
	noLedger := func(context.Context, []string) ([]string, error) { return nil, errors.New("no leader") }
	sweep := func(now time.Time) storage.SweepResult {
		res, _ := s.Sweep(context.Background(), storage.SweepOptions{Placed: noLedger, QuarantineKeep: time.Hour,
			Now: func() time.Time { return now }})
		return res
	}
	if res := sweep(time.Now().Add(30 * time.Minute)); res.Quarantined != 0 {
		t.Fatalf("swept a shard quarantined half an hour ago: %+v", res)
	}
	if _, err := os.Stat(quarantined); err != nil {
		t.Fatalf("quarantined shard gone within the keep: %v", err)
	}
	if res := sweep(time.Now().Add(2 * time.Hour)); res.Quarantined != 1 {
		t.Fatalf("sweep past the keep: %+v, want the quarantined shard deleted", res)
	}
	if _, err := os.Stat(quarantined); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("quarantined shard still there: %v", err)
	}
	for _, h := range hashes[1:] {
		if !held(t, s, h) {
			t.Fatalf("healthy shard %s deleted while the ledger could not be asked", h)
		}
	}
}
