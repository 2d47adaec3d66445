package ledger

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/storage"
)

// committedManifest commits a two-segment manifest (k=2, m=1, shards on
// p0..p3) and returns it.
func committedManifest(a *applier) *storage.Manifest {
	a.t.Helper()
	h := func(c string) string { return strings.Repeat(c, 64) }
	seg := func(hashes string, peers ...string) storage.Segment {
		var shards []storage.Shard
		for i, p := range peers {
			shards = append(shards, storage.Shard{Hash: h(hashes[i : i+1]), Root: h("f"), Peer: p})
		}
		return storage.Segment{Hash: storage.SegmentHash(2, 64, shards), Shards: shards}
	}
	m := &storage.Manifest{Version: storage.ManifestVersion, Hash: h("a"), Size: 128, SegmentSize: 64, K: 2, M: 1,
		Segments: []storage.Segment{seg("123", "p0", "p1", "p2"), seg("456", "p1", "p2", "p3")}}
	if err := m.Validate(); err != nil {
		a.t.Fatal(err)
	}
	if resp := a.apply(&CommitManifestCommand{Manifest: m, Now: 10, Owner: "c-alice"}); resp != nil {
		a.t.Fatalf("first commit: %v", resp)
	}
	return m
}

func (a *applier) manifest(hash string) *storage.Manifest {
	var m *storage.Manifest
	a.fsm.View(func(l *Ledger) { m = l.Manifest(hash) })
	return m
}

// TestLedger_CommittedManifestIsNotReplaced: a manifest with other shard
// hashes (the segment hash recomputed to match, as an attacker would) is
// refused with ErrManifestCommitted and the committed one stays, so does a
// placement change no repair ordered, and one that unplaces a shard.
func TestLedger_CommittedManifestIsNotReplaced(t *testing.T) {
	a := newApplier(t)
	m := committedManifest(a)
	forged := m.Clone()
	r := rand.New(rand.NewPCG(1, 2))
	for s := range forged.Segments {
		for i := range forged.Segments[s].Shards {
			forged.Segments[s].Shards[i].Hash = storage.Hash([]byte{byte(r.IntN(256)), byte(s), byte(i)})
		}
		forged.Segments[s].Hash = storage.SegmentHash(forged.K, forged.SegmentLen(s), forged.Segments[s].Shards)
	}
	if err := forged.Validate(); err != nil {
		t.Fatal(err)
	}
	moved := m.Clone()
	moved.Segments[0].Shards[0].Peer = "p9"
	unplaced := m.Clone()
	unplaced.Segments[1].Shards[2].Peer = ""
	otherRoot := m.Clone()
	otherRoot.Segments[0].Shards[1].Root = strings.Repeat("e", 64)
	for name, c := range map[string]*CommitManifestCommand{
		"forged shard hashes":    {Manifest: forged, Owner: "c-mallory"},
		"unordered move":         {Manifest: moved, Owner: "c-mallory"},
		"move outside the order": {Manifest: moved, Moves: []storage.ShardLoc{{Segment: 1, Index: 0}}},
		"unplacing a shard":      {Manifest: unplaced, Moves: []storage.ShardLoc{{Segment: 1, Index: 2}}},
		"another proof root":     {Manifest: otherRoot},
	} {
		err, _ := a.apply(c).(error)
		if !errors.Is(err, ErrManifestCommitted) {
			t.Fatalf("%s: %v, want ErrManifestCommitted", name, err)
		}
		if got := a.manifest(m.Hash); !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: committed manifest changed to %+v", name, got)
		}
	}
	a.fsm.View(func(l *Ledger) {
		if owners := l.BlobMeta(m.Hash).Owners; !reflect.DeepEqual(owners, []string{"c-alice"}) {
			t.Fatalf("owners %v after refused commits, want only c-alice", owners)
		}
		if err := l.CheckIndexes(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLedger_IdenticalManifestCommitIsARetry: committing the committed
// manifest again succeeds and changes nothing but its owners and pin.
func TestLedger_IdenticalManifestCommitIsARetry(t *testing.T) {
	a := newApplier(t)
	m := committedManifest(a)
	if resp := a.apply(&CommitManifestCommand{Manifest: m.Clone(), Now: 99, Pin: true, Owner: "c-bob"}); resp != nil {
		t.Fatalf("identical commit: %v", resp)
	}
	if got := a.manifest(m.Hash); !reflect.DeepEqual(got, m) {
		t.Fatalf("manifest changed by a retry: %+v", got)
	}
	a.fsm.View(func(l *Ledger) {
		meta := l.BlobMeta(m.Hash)
		if meta.Created != 10 || !meta.Pinned || !reflect.DeepEqual(meta.Owners, []string{"c-alice", "c-bob"}) {
			t.Fatalf("meta after retry: %+v", meta)
		}
	})
}

// TestLedger_RepairMovesShardsItNames: a commit that moves shards named in
// Moves to new peers, same hashes, is applied, and the shard index follows.
func TestLedger_RepairMovesShardsItNames(t *testing.T) {
	a := newApplier(t)
	m := committedManifest(a)
	fixed := m.Clone()
	fixed.Segments[0].Shards[0].Peer = "p9"
	fixed.Segments[1].Shards[2].Peer = "p8"
	moves := []storage.ShardLoc{{Segment: 0, Index: 0}, {Segment: 1, Index: 2}}
	if resp := a.apply(&CommitManifestCommand{Manifest: fixed, Moves: moves}); resp != nil {
		t.Fatalf("repair commit: %v", resp)
	}
	if got := a.manifest(m.Hash); !reflect.DeepEqual(got, fixed) {
		t.Fatalf("manifest after repair: %+v", got)
	}
	a.fsm.View(func(l *Ledger) {
		if !l.PlacedOn(m.Segments[0].Shards[0].Hash, "p9") || l.PlacedOn(m.Segments[0].Shards[0].Hash, "p0") {
			t.Fatal("shard index does not follow the repair")
		}
		if err := l.CheckIndexes(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLedger_OldPutManifestStillReplaces: cmdPutManifest entries in old
// logs are applied as they were (a replacement), so a replayed log gives
// the state it gave.
func TestLedger_OldPutManifestStillReplaces(t *testing.T) {
	a := newApplier(t)
	m := committedManifest(a)
	other := m.Clone()
	other.Segments[0].Shards[0].Peer = "p9"
	if resp := a.apply(&PutManifestCommand{Manifest: other}); resp != nil {
		t.Fatal(resp)
	}
	if got := a.manifest(m.Hash); !reflect.DeepEqual(got, other) {
		t.Fatalf("old put-manifest did not replace: %+v", got)
	}
}

// TestLedger_ManifestFromBeforeProofsKeepsNoRoots: the same bytes put again
// by a client that adds proof roots is a retry (the committed manifest,
// without roots, stays), and a repair may not add roots no one can check.
func TestLedger_ManifestFromBeforeProofsKeepsNoRoots(t *testing.T) {
	a := newApplier(t)
	withRoots := committedManifest(a)
	old := withRoots.Clone()
	old.Hash = strings.Repeat("b", 64)
	for s := range old.Segments {
		for i := range old.Segments[s].Shards {
			old.Segments[s].Shards[i].Root = ""
		}
	}
	if resp := a.apply(&CommitManifestCommand{Manifest: old}); resp != nil {
		t.Fatal(resp)
	}
	again := withRoots.Clone()
	again.Hash = old.Hash
	if resp := a.apply(&CommitManifestCommand{Manifest: again, Owner: "c-new"}); resp != nil {
		t.Fatalf("the same bytes with roots: %v", resp)
	}
	if got := a.manifest(old.Hash); !reflect.DeepEqual(got, old) {
		t.Fatalf("manifest changed to %+v", got)
	}
	again.Segments[0].Shards[0].Peer = "p9"
	err, _ := a.apply(&CommitManifestCommand{Manifest: again, Moves: []storage.ShardLoc{{Segment: 0, Index: 0}}}).(error)
	if !errors.Is(err, ErrManifestCommitted) || !strings.Contains(err.Error(), "proof root") {
		t.Fatalf("a repair adding roots: %v, want refused", err)
	}
}

// TestLedger_RepairedManifestSurvivesASnapshot: a manifest moved by a
// repair, proof roots and all, is what a restored ledger holds.
func TestLedger_RepairedManifestSurvivesASnapshot(t *testing.T) {
	a := newApplier(t)
	m := committedManifest(a)
	fixed := m.Clone()
	fixed.Segments[1].Shards[0].Peer = "p7"
	if resp := a.apply(&CommitManifestCommand{Manifest: fixed, Moves: []storage.ShardLoc{{Segment: 1, Index: 0}}}); resp != nil {
		t.Fatal(resp)
	}
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	restored := NewFSM()
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	var got *storage.Manifest
	restored.View(func(l *Ledger) { got = l.Manifest(m.Hash) })
	if !reflect.DeepEqual(got, fixed) {
		t.Fatalf("restored manifest %+v, want %+v", got, fixed)
	}
}
