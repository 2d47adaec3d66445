package ledger

import (
	"cmp"
	"slices"
)

// cacheIndex is the result cache's index: (key, entry) items, 16 bytes
// each with no pointer, sorted by key in buckets picked by the key's top
// bits. A Go map of the same items costs 17 bytes a slot over a load that
// swings between 44% and 87% as its tables split (39 bytes an item at a
// million): sorted buckets grown by an eighth at a time cost 16 to 18.
// The keys are SHA-256 bits, so the buckets fill evenly; a key several
// items share (the same content done twice, or a collision) is a run of
// items, in entry order.
//
// The layout is no part of the replicated state: a restored ledger may
// split its buckets at other points, and holds the same items.
type cacheIndex struct {
	bits    uint8 // len(buckets) == 1<<bits
	n       int
	buckets [][]cacheItem
}

type cacheItem struct {
	key uint64
	e   cacheEntry
}

// The average bucket holds between bucketMin and bucketMax items: an
// insert moves a few KiB at most, a lookup searches one bucket.
const (
	bucketMax = 128
	bucketMin = 16
)

func newCacheIndex() cacheIndex { return cacheIndex{buckets: make([][]cacheItem, 1)} }

func (x *cacheIndex) len() int { return x.n }

// bucket is key's bucket (a shift by 64 is 0: one bucket).
func (x *cacheIndex) bucket(key uint64) *[]cacheItem { return &x.buckets[key>>(64-x.bits)] }

// lowerBound is the first position in b whose item is not below it.
func lowerBound(b []cacheItem, it cacheItem) int {
	lo, hi := 0, len(b)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m := b[mid]; m.key < it.key || m.key == it.key && m.e < it.e {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// each calls f with key's entries, in entry order.
func (x *cacheIndex) each(key uint64, f func(cacheEntry)) {
	b := *x.bucket(key)
	for i := lowerBound(b, cacheItem{key: key}); i < len(b) && b[i].key == key; i++ {
		f(b[i].e)
	}
}

// put adds an item.
func (x *cacheIndex) put(key uint64, e cacheEntry) {
	b := x.bucket(key)
	i := lowerBound(*b, cacheItem{key, e})
	if len(*b) == cap(*b) { // grow by an eighth: append would double a small one
		grown := make([]cacheItem, len(*b), cap(*b)+cap(*b)/8+4)
		copy(grown, *b)
		*b = grown
	}
	*b = slices.Insert(*b, i, cacheItem{key, e})
	x.n++
	if x.n > bucketMax<<x.bits {
		x.split()
	}
}

// putMany adds items at once (a resubmit's hits): sorted, then merged
// into their buckets in one pass, where a put each would move a cold
// bucket's tail per item (a million hits: seconds of Apply). items is
// reordered.
func (x *cacheIndex) putMany(items []cacheItem) {
	slices.SortFunc(items, compareItems)
	for x.n+len(items) > bucketMax<<x.bits {
		x.split()
	}
	for i := 0; i < len(items); {
		b := x.bucket(items[i].key)
		end := i + 1
		for end < len(items) && x.bucket(items[end].key) == b {
			end++
		}
		*b = mergeItems(*b, items[i:end])
		i = end
	}
	x.n += len(items)
}

// mergeItems is the sorted a and b in one new slice, an eighth to spare.
func mergeItems(a, b []cacheItem) []cacheItem {
	n := len(a) + len(b)
	out := make([]cacheItem, 0, n+n/8)
	for len(a) > 0 && len(b) > 0 {
		if compareItems(b[0], a[0]) < 0 {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

func compareItems(a, b cacheItem) int {
	return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.e, b.e))
}

// dropAll removes every item for which gone is true in one pass over the
// index: a purge of a job that holds a good part of the index, where a
// drop per task would cost a cold bucket each.
func (x *cacheIndex) dropAll(gone func(cacheEntry) bool) {
	for i, b := range x.buckets {
		kept := slices.DeleteFunc(b, func(it cacheItem) bool { return gone(it.e) })
		x.n -= len(b) - len(kept)
		if cap(kept) > 2*len(kept)+16 {
			kept = slices.Clip(slices.Clone(kept))
		}
		x.buckets[i] = kept
	}
	for x.bits > 0 && x.n < bucketMin<<x.bits {
		x.merge()
	}
}

// drop removes key's items for which gone is true.
func (x *cacheIndex) drop(key uint64, gone func(cacheEntry) bool) {
	b := x.bucket(key)
	i := lowerBound(*b, cacheItem{key: key})
	end := i
	for end < len(*b) && (*b)[end].key == key {
		end++
	}
	run := (*b)[i:end]
	kept := slices.DeleteFunc(slices.Clone(run), func(it cacheItem) bool { return gone(it.e) })
	if len(kept) == len(run) {
		return
	}
	*b = slices.Replace(*b, i, end, kept...)
	x.n -= len(run) - len(kept)
	if cap(*b) > 2*len(*b)+16 { // a purge gives the memory back
		*b = slices.Clip(slices.Clone(*b))
	}
	if x.bits > 0 && x.n < bucketMin<<x.bits {
		x.merge()
	}
}

// split doubles the buckets: each bucket's items are sorted by key, so
// the next bit of the key cuts it in two.
func (x *cacheIndex) split() {
	out := make([][]cacheItem, 0, 2*len(x.buckets))
	shift := 63 - x.bits
	for _, b := range x.buckets {
		cut, _ := slices.BinarySearchFunc(b, true, func(it cacheItem, _ bool) int {
			if it.key>>shift&1 == 0 {
				return -1
			}
			return 1
		})
		out = append(out, slices.Clip(slices.Clone(b[:cut])), slices.Clip(slices.Clone(b[cut:])))
	}
	x.buckets, x.bits = out, x.bits+1
}

// merge halves the buckets, joining each pair.
func (x *cacheIndex) merge() {
	out := make([][]cacheItem, len(x.buckets)/2)
	for i := range out {
		out[i] = slices.Concat(x.buckets[2*i], x.buckets[2*i+1])
	}
	x.buckets, x.bits = out, x.bits-1
}

// all calls f with every item, in key order.
func (x *cacheIndex) all(f func(key uint64, e cacheEntry)) {
	for _, b := range x.buckets {
		for _, it := range b {
			f(it.key, it.e)
		}
	}
}
