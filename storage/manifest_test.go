package storage_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/storage"
)

// validManifest is a two-segment blob with k=2, m=1 on three peers.
func validManifest() *storage.Manifest {
	h := func(c string) string { return strings.Repeat(c, 64) }
	m := &storage.Manifest{
		Version: storage.ManifestVersion, Hash: h("a"), Size: 100, SegmentSize: 64, K: 2, M: 1,
		Segments: []storage.Segment{
			{Shards: []storage.Shard{{Hash: h("1"), Peer: "p0"}, {Hash: h("2"), Peer: "p1"}, {Hash: h("3"), Peer: "p2"}}},
			{Shards: []storage.Shard{{Hash: h("4"), Peer: "p1"}, {Hash: h("5"), Peer: "p2"}, {Hash: h("6"), Peer: ""}}},
		},
	}
	sealSegments(m)
	return m
}

// sealSegments sets each segment's hash from its length and shard hashes.
func sealSegments(m *storage.Manifest) {
	for i := range m.Segments {
		m.Segments[i].Hash = storage.SegmentHash(m.K, m.SegmentLen(i), m.Segments[i].Shards)
	}
}

func TestManifest_SegmentHashCommitsToLengthKAndEveryShardInOrder(t *testing.T) {
	m := validManifest()
	shards := m.Segments[0].Shards
	base := storage.SegmentHash(2, 64, shards)
	if err := storage.CheckHash(base); err != nil {
		t.Fatal(err)
	}
	swapped := []storage.Shard{shards[1], shards[0], shards[2]}
	other := append([]storage.Shard{}, shards...)
	other[2].Hash = strings.Repeat("7", 64)
	moved := append([]storage.Shard{}, shards...)
	moved[0].Peer = "elsewhere" // placement is not part of the name
	for name, got := range map[string]string{
		"length":        storage.SegmentHash(2, 63, shards),
		"k":             storage.SegmentHash(1, 64, shards),
		"shard order":   storage.SegmentHash(2, 64, swapped),
		"a shard hash":  storage.SegmentHash(2, 64, other),
		"one shard off": storage.SegmentHash(2, 64, shards[:2]),
	} {
		if got == base {
			t.Errorf("changing the %s leaves the segment hash unchanged", name)
		}
	}
	if storage.SegmentHash(2, 64, moved) != base {
		t.Error("moving a shard to another peer changed the segment hash")
	}
}

func TestManifest_Version1IsRefusedAsPreRelease(t *testing.T) {
	m := validManifest()
	m.Version = 1
	data, _ := json.Marshal(m)
	_, err := storage.DecodeManifest(data)
	if !errors.Is(err, storage.ErrBadManifest) || !strings.Contains(err.Error(), "pre-release") {
		t.Fatalf("DecodeManifest(v1) = %v, want ErrBadManifest saying v1 was a pre-release format", err)
	}
}

func TestManifest_EncodeDecodeRoundTrip(t *testing.T) {
	m := validManifest()
	data, err := storage.EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := storage.DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if got.Redundancy() != 0 || len(got.Unplaced()) != 1 || got.ShardSize(1) != 18 {
		t.Fatalf("redundancy %d, unplaced %v, shard size %d", got.Redundancy(), got.Unplaced(), got.ShardSize(1))
	}
}

func TestManifest_DecodeRefusesEveryInconsistency(t *testing.T) {
	cases := map[string]func(m *storage.Manifest){
		"version":              func(m *storage.Manifest) { m.Version = storage.ManifestVersion + 1 },
		"version 1":            func(m *storage.Manifest) { m.Version = 1 },
		"segment hash wrong":   func(m *storage.Manifest) { m.Segments[1].Hash = m.Segments[0].Hash },
		"shard hash unsealed":  func(m *storage.Manifest) { m.Segments[0].Shards[0].Hash = strings.Repeat("9", 64) },
		"size unsealed":        func(m *storage.Manifest) { m.Size = 99 },
		"blob hash":            func(m *storage.Manifest) { m.Hash = "xyz" },
		"upper-case hash":      func(m *storage.Manifest) { m.Hash = strings.Repeat("A", 64) },
		"negative size":        func(m *storage.Manifest) { m.Size = -1 },
		"zero segment size":    func(m *storage.Manifest) { m.SegmentSize = 0 },
		"huge segment size":    func(m *storage.Manifest) { m.SegmentSize = storage.MaxSegmentSize + 1 },
		"k zero":               func(m *storage.Manifest) { m.K = 0 },
		"m negative":           func(m *storage.Manifest) { m.M = -1 },
		"too many shards":      func(m *storage.Manifest) { m.K, m.M = 200, 57 },
		"too few segments":     func(m *storage.Manifest) { m.Size = 200 },
		"too many segments":    func(m *storage.Manifest) { m.Size = 64 },
		"segment hash":         func(m *storage.Manifest) { m.Segments[0].Hash = "" },
		"shard count":          func(m *storage.Manifest) { m.Segments[1].Shards = m.Segments[1].Shards[:2] },
		"shard hash":           func(m *storage.Manifest) { m.Segments[0].Shards[2].Hash = "00" },
		"two shards one peer":  func(m *storage.Manifest) { m.Segments[0].Shards[1].Peer = "p0" },
		"fewer than k placed":  func(m *storage.Manifest) { m.Segments[1].Shards[0].Peer = "" },
		"peer id with a space": func(m *storage.Manifest) { m.Segments[0].Shards[0].Peer = "p 0" },
		"peer id too long":     func(m *storage.Manifest) { m.Segments[0].Shards[0].Peer = strings.Repeat("p", 129) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m := validManifest()
			mutate(m)
			data, _ := json.Marshal(m)
			if _, err := storage.DecodeManifest(data); !errors.Is(err, storage.ErrBadManifest) {
				t.Fatalf("DecodeManifest = %v, want ErrBadManifest", err)
			}
		})
	}
	good, _ := json.Marshal(validManifest())
	for name, data := range map[string][]byte{
		"unknown field": bytes.Replace(good, []byte(`"k":`), []byte(`"kk":1,"k":`), 1),
		"trailing data": append(append([]byte{}, good...), []byte(` {}`)...),
		"not json":      []byte("manifest"),
		"null":          []byte("null"),
	} {
		if _, err := storage.DecodeManifest(data); !errors.Is(err, storage.ErrBadManifest) {
			t.Errorf("%s: DecodeManifest = %v, want ErrBadManifest", name, err)
		}
	}
}

// FuzzDecodeManifest: the decoder never panics, and whatever it accepts is
// valid and encodes back to a manifest that decodes the same.
func FuzzDecodeManifest(f *testing.F) {
	good, _ := json.Marshal(validManifest())
	f.Add(good)
	f.Add([]byte(`{"version":2,"hash":"` + strings.Repeat("0", 64) + `","size":0,"segment_size":1,"k":1,"m":0,"segments":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":2,"size":9223372036854775807,"segment_size":1}`))
	v1 := validManifest()
	v1.Version = 1
	old, _ := json.Marshal(v1)
	f.Add(old)
	one := &storage.Manifest{Version: storage.ManifestVersion, Hash: strings.Repeat("0", 64), Size: 1, SegmentSize: 1, K: 1,
		Segments: []storage.Segment{{Shards: []storage.Shard{{Hash: strings.Repeat("1", 64), Peer: "p"}}}}}
	sealSegments(one)
	small, _ := json.Marshal(one)
	f.Add(small)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := storage.DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, storage.ErrBadManifest) && !errors.Is(err, storage.ErrBadHash) {
				t.Fatalf("error %v wraps neither ErrBadManifest nor ErrBadHash", err)
			}
			return
		}
		again, err := storage.EncodeManifest(m)
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		m2, err := storage.DecodeManifest(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v, %+v != %+v", err, m2, m)
		}
		for i, seg := range m.Segments {
			if m.SegmentLen(i) < 1 || m.ShardSize(i) < 1 {
				t.Fatalf("segment %d: len %d shard size %d", i, m.SegmentLen(i), m.ShardSize(i))
			}
			if seg.Hash != storage.SegmentHash(m.K, m.SegmentLen(i), seg.Shards) {
				t.Fatalf("segment %d: accepted a hash that does not match its length and shards", i)
			}
		}
	})
}
