package storage_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/storage"
)

// TestSameContent_NamesTheDifferenceAndMovedTheShards: placement alone is
// the same content (Moved lists it); another shard hash, size or coding is
// not, and the error names it; only the coding change may be the same blob.
func TestSameContent_NamesTheDifferenceAndMovedTheShards(t *testing.T) {
	m := validManifest()
	moved := m.Clone()
	moved.Segments[1].Shards[2].Peer = "p9"
	if err := storage.SameContent(m, moved); err != nil {
		t.Fatalf("placement only: %v", err)
	}
	if got := storage.Moved(m, moved); !reflect.DeepEqual(got, []storage.ShardLoc{{Segment: 1, Index: 2}}) {
		t.Fatalf("moved %v", got)
	}
	shard := m.Clone()
	shard.Segments[0].Shards[1].Hash = strings.Repeat("9", 64)
	recoded := m.Clone()
	recoded.K, recoded.M = 1, 2
	for name, c := range map[string]struct {
		b           *storage.Manifest
		says        string
		otherCoding bool
	}{
		"shard hash": {shard, "segment 0: shard 1 hash", false},
		"coding":     {recoded, "k=1 m=2, committed k=2 m=1", true},
	} {
		err := storage.SameContent(m, c.b)
		if !errors.Is(err, storage.ErrManifestDiffers) || !strings.Contains(err.Error(), c.says) {
			t.Fatalf("%s: %v, want it to say %q", name, err, c.says)
		}
		if got := storage.OtherCoding(m, c.b); got != c.otherCoding {
			t.Fatalf("%s: OtherCoding %v", name, got)
		}
	}
}
