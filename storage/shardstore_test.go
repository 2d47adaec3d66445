package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/peergrid/peergrid/storage"
)

func openStore(t *testing.T, opts storage.ShardStoreOptions) *storage.ShardStore {
	t.Helper()
	s, err := storage.OpenShardStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShardStore_PutGetHasDeleteList(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, storage.ShardStoreOptions{})
	a, b := []byte("shard a"), []byte{}
	for _, d := range [][]byte{a, b} {
		if err := s.Put(ctx, storage.Hash(d), bytes.NewReader(d)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, storage.Hash(a))
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if ok, err := s.Has(storage.Hash(b)); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	list, err := s.List(ctx)
	want := []string{storage.Hash(a), storage.Hash(b)}
	slices.Sort(list)
	slices.Sort(want)
	if err != nil || !slices.Equal(list, want) {
		t.Fatalf("List = %v, %v; want %v", list, err, want)
	}
	if err := s.Delete(storage.Hash(a)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, storage.Hash(a)); !errors.Is(err, storage.ErrShardNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrShardNotFound", err)
	}
	if err := s.Delete(storage.Hash(a)); err != nil {
		t.Fatalf("second Delete = %v", err)
	}
}

func TestShardStore_PutRefusesBytesThatDoNotMatch(t *testing.T) {
	s := openStore(t, storage.ShardStoreOptions{})
	h := storage.Hash([]byte("right"))
	err := s.Put(context.Background(), h, bytes.NewReader([]byte("wrong")))
	if !errors.Is(err, storage.ErrHashMismatch) {
		t.Fatalf("Put = %v, want ErrHashMismatch", err)
	}
	if ok, _ := s.Has(h); ok {
		t.Fatal("mismatched shard was stored")
	}
	assertEmptyDir(t, filepath.Join(s.Dir(), "tmp"))
	if err := s.Put(context.Background(), "../etc/passwd", bytes.NewReader(nil)); !errors.Is(err, storage.ErrBadHash) {
		t.Fatalf("Put with a path for a hash = %v, want ErrBadHash", err)
	}
}

func TestShardStore_PutRefusesOversizedShard(t *testing.T) {
	s := openStore(t, storage.ShardStoreOptions{MaxShardSize: 8})
	d := []byte("nine bytes")
	if err := s.Put(context.Background(), storage.Hash(d), bytes.NewReader(d)); !errors.Is(err, storage.ErrShardTooLarge) {
		t.Fatalf("Put = %v, want ErrShardTooLarge", err)
	}
	assertEmptyDir(t, filepath.Join(s.Dir(), "tmp"))
}

func TestShardStore_CorruptShardIsQuarantinedAndReported(t *testing.T) {
	var mu sync.Mutex
	var reported []string
	s := openStore(t, storage.ShardStoreOptions{OnCorrupt: func(h string) { mu.Lock(); reported = append(reported, h); mu.Unlock() }})
	d := []byte("soon to rot")
	h := storage.Hash(d)
	if err := s.Put(context.Background(), h, bytes.NewReader(d)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(h), []byte("rotten bits"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), h); !errors.Is(err, storage.ErrCorruptShard) {
		t.Fatalf("Get = %v, want ErrCorruptShard", err)
	}
	if ok, _ := s.Has(h); ok {
		t.Fatal("corrupt shard still in the store")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "quarantine", h)); err != nil {
		t.Fatalf("not quarantined: %v", err)
	}
	if !slices.Equal(reported, []string{h}) {
		t.Fatalf("reported %v, want [%s]", reported, h)
	}
	// The shard can be written again (by repair).
	if err := s.Put(context.Background(), h, bytes.NewReader(d)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(context.Background(), h); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("Get after rewrite = %q, %v", got, err)
	}
}

func TestShardStore_ScrubFindsRot(t *testing.T) {
	s := openStore(t, storage.ShardStoreOptions{})
	var hashes []string
	for _, d := range []string{"one", "two", "three"} {
		h := storage.Hash([]byte(d))
		hashes = append(hashes, h)
		if err := s.Put(context.Background(), h, bytes.NewReader([]byte(d))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.Path(hashes[1]), []byte("rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := s.Scrub(context.Background())
	if err != nil || !slices.Equal(bad, hashes[1:2]) {
		t.Fatalf("Scrub = %v, %v; want [%s]", bad, err, hashes[1])
	}
}

func TestShardStore_OpenRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := storage.OpenShardStore(dir, storage.ShardStoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", "half-written"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.OpenShardStore(dir, storage.ShardStoreOptions{}); err != nil {
		t.Fatal(err)
	}
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("%s: %d entries, %v; want none", dir, len(entries), err)
	}
}

func corruptFile(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, 0)
	data[0] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestShardStore_PutRewritesARottenCopy(t *testing.T) {
	s := openStore(t, storage.ShardStoreOptions{})
	d := []byte("rewrite me")
	h := storage.Hash(d)
	if err := s.Put(context.Background(), h, bytes.NewReader(d)); err != nil {
		t.Fatal(err)
	}
	corruptFile(t, s.Path(h))
	if err := s.Put(context.Background(), h, bytes.NewReader(d)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(context.Background(), h); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("Get = %q, %v", got, err)
	}
}
