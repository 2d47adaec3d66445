package ledger

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestCacheIndex_AgreesWithAMapThroughGrowthAndPurges: random puts (with
// keys shared by several entries), a batch put at once (a resubmit's
// hits), a purge in one pass and drops, through enough items to split the
// buckets several times and few enough after to merge them back, answer
// every key as a plain map of lists does; every bucket is sorted and holds
// only its keys, and the memory per item stays near the item's 16 bytes.
func TestCacheIndex_AgreesWithAMapThroughGrowthAndPurges(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	x := newCacheIndex()
	model := map[uint64][]cacheEntry{}
	keys := []uint64{}
	put := func() {
		key := rng.Uint64()
		if len(keys) > 0 && rng.IntN(10) == 0 {
			key = keys[rng.IntN(len(keys))] // a key shared with another source
		} else {
			keys = append(keys, key)
		}
		e := cacheEntry(rng.Uint64())
		x.put(key, e)
		model[key] = append(model[key], e)
	}
	drop := func() {
		key := keys[rng.IntN(len(keys))]
		slot := uint32(0)
		if es := model[key]; len(es) > 0 {
			slot = es[rng.IntN(len(es))].slot()
		}
		x.drop(key, func(e cacheEntry) bool { return e.slot() == slot })
		model[key] = slices.DeleteFunc(model[key], func(e cacheEntry) bool { return e.slot() == slot })
		if len(model[key]) == 0 {
			delete(model, key)
		}
	}
	for range 20_000 {
		put()
	}
	batch := make([]cacheItem, 30_000)
	for i := range batch {
		key := rng.Uint64()
		if i > 0 && rng.IntN(10) == 0 {
			key = batch[i-1].key
		}
		keys = append(keys, key)
		batch[i] = cacheItem{key: key, e: cacheEntry(rng.Uint64())}
		model[key] = append(model[key], batch[i].e)
	}
	x.putMany(batch)
	grown := x.bits
	wantIndexAsModel(t, x, model)
	if per := indexBytes(x) / float64(x.len()); per > 19 {
		t.Errorf("%.1f bytes an item at %d items", per, x.len())
	}
	purged := func(e cacheEntry) bool { return e.slot()%4 == 0 }
	x.dropAll(purged)
	for key, es := range model {
		if model[key] = slices.DeleteFunc(es, purged); len(model[key]) == 0 {
			delete(model, key)
		}
	}
	wantIndexAsModel(t, x, model)
	for len(model) > 1_000 {
		drop()
	}
	for range 2_000 {
		if rng.IntN(2) == 0 {
			put()
		} else {
			drop()
		}
	}
	if grown < 5 || x.bits >= grown {
		t.Errorf("buckets: 2^%d at the top, 2^%d after the drops; want splits and merges", grown, x.bits)
	}
	wantIndexAsModel(t, x, model)
}

func wantIndexAsModel(t *testing.T, x cacheIndex, model map[uint64][]cacheEntry) {
	t.Helper()
	n := 0
	for key, want := range model {
		var got []cacheEntry
		x.each(key, func(e cacheEntry) { got = append(got, e) })
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("key %x: %v, want %v", key, got, want)
		}
		n += len(want)
	}
	if x.len() != n {
		t.Fatalf("index holds %d items, the model %d", x.len(), n)
	}
	for i, b := range x.buckets {
		if !slices.IsSortedFunc(b, compareItems) {
			t.Fatalf("bucket %d is not sorted", i)
		}
		for _, it := range b {
			if x.bucket(it.key) != &x.buckets[i] {
				t.Fatalf("key %x in bucket %d of 2^%d", it.key, i, x.bits)
			}
		}
	}
}

// indexBytes is what the index's buckets hold allocated (the allocator's
// size classes aside).
func indexBytes(x cacheIndex) float64 {
	n := cap(x.buckets) * int(unsafe.Sizeof([]cacheItem(nil)))
	for _, b := range x.buckets {
		n += cap(b) * int(unsafe.Sizeof(cacheItem{}))
	}
	return float64(n)
}
