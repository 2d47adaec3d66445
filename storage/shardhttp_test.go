package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
)

func shardServer(t *testing.T, token string) (*storage.ShardStore, *httptest.Server) {
	t.Helper()
	store := openStore(t, storage.ShardStoreOptions{})
	srv := httptest.NewServer(storage.NewShardHandler(store, storage.TokenAuth(token)))
	t.Cleanup(srv.Close)
	return store, srv
}

func TestShardHTTP_UsesTheAPITokenHeader(t *testing.T) {
	if storage.TokenHeader != api.TokenHeader {
		t.Fatalf("storage.TokenHeader %q != api.TokenHeader %q", storage.TokenHeader, api.TokenHeader)
	}
}

func TestShardHTTP_PutGetHasDelete(t *testing.T) {
	ctx := context.Background()
	_, srv := shardServer(t, "secret")
	c := storage.NewShardClient(srv.URL, "secret", srv.Client())
	d := []byte("a shard over http")
	h := storage.Hash(d)
	if err := c.Put(ctx, h, d); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, h)
	if err != nil || string(got) != string(d) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if ok, err := c.Has(ctx, h); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	if err := c.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Has(ctx, h); ok || err != nil {
		t.Fatalf("Has after Delete = %v, %v", ok, err)
	}
	if _, err := c.Get(ctx, h); !errors.Is(err, storage.ErrShardNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrShardNotFound", err)
	}
	if err := c.Put(ctx, h, []byte("not it")); !errors.Is(err, storage.ErrHashMismatch) {
		t.Fatalf("Put of wrong bytes = %v, want ErrHashMismatch", err)
	}
}

func TestShardHTTP_WrongOrMissingTokenIs401AndChangesNothing(t *testing.T) {
	ctx := context.Background()
	store, srv := shardServer(t, "secret")
	d := []byte("guarded")
	h := storage.Hash(d)
	for _, token := range []string{"", "wrong", "secret2"} {
		c := storage.NewShardClient(srv.URL, token, srv.Client())
		if err := c.Put(ctx, h, d); !errors.Is(err, storage.ErrUnauthorized) {
			t.Fatalf("token %q: Put = %v, want ErrUnauthorized", token, err)
		}
	}
	if ok, _ := store.Has(h); ok {
		t.Fatal("unauthorized put stored a shard")
	}
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodDelete} {
		req, _ := http.NewRequest(method, srv.URL+"/v1/shards/"+h, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without token: HTTP %d, want 401", method, resp.StatusCode)
		}
	}
}

func TestShardHTTP_CorruptShardOnDiskIsReportedAsCorrupt(t *testing.T) {
	ctx := context.Background()
	store, srv := shardServer(t, "")
	c := storage.NewShardClient(srv.URL, "", srv.Client())
	d := []byte("will rot on disk")
	h := storage.Hash(d)
	if err := c.Put(ctx, h, d); err != nil {
		t.Fatal(err)
	}
	corruptFile(t, store.Path(h))
	if _, err := c.Get(ctx, h); !errors.Is(err, storage.ErrCorruptShard) {
		t.Fatalf("Get = %v, want ErrCorruptShard", err)
	}
}

func TestShardHTTP_OversizedBodyIsRefused(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, storage.ShardStoreOptions{MaxShardSize: 8})
	srv := httptest.NewServer(storage.NewShardHandler(store, storage.TokenAuth("")))
	t.Cleanup(srv.Close)
	c := storage.NewShardClient(srv.URL, "", srv.Client())
	d := []byte("nine bytes")
	if err := c.Put(ctx, storage.Hash(d), d); !errors.Is(err, storage.ErrShardTooLarge) {
		t.Fatalf("Put = %v, want ErrShardTooLarge", err)
	}
	if ok, _ := store.Has(storage.Hash(d)); ok {
		t.Fatal("oversized shard stored")
	}
}

// TestShardHTTP_ConcurrentGetsOfManySizesReturnTheirOwnBytes: the server
// reads shards into pooled buffers; concurrent reads of shards of different
// sizes must each get exactly their own bytes.
func TestShardHTTP_ConcurrentGetsOfManySizesReturnTheirOwnBytes(t *testing.T) {
	ctx := context.Background()
	_, srv := shardServer(t, "")
	c := storage.NewShardClient(srv.URL, "", srv.Client())
	var shards [][]byte
	for i, n := range []int{0, 1, 1000, 64 << 10, 300 << 10, 1 << 20, 2<<20 + 7} {
		d := storagetest.RandomBytes(uint64(50+i), n)
		if err := c.Put(ctx, storage.Hash(d), d); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, d)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(shards))
	for range 4 {
		for _, d := range shards {
			wg.Go(func() {
				got, err := c.Get(ctx, storage.Hash(d))
				if err == nil && !bytes.Equal(got, d) {
					err = fmt.Errorf("shard of %d bytes: got %d other bytes", len(d), len(got))
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestShardHTTP_StuffingPastTheQuotaIsRefusedWith507: a put that would pass
// the store's quota is refused before its body is stored, with 507 naming
// the quota, whether its size is announced or streamed; what is held stays,
// and deleting frees room again.
func TestShardHTTP_StuffingPastTheQuotaIsRefusedWith507(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, storage.ShardStoreOptions{MaxBytes: 1000})
	srv := httptest.NewServer(storage.NewShardHandler(store, storage.TokenAuth("")))
	t.Cleanup(srv.Close)
	c := storage.NewShardClient(srv.URL, "", srv.Client())
	held := storagetest.RandomBytes(1, 600)
	if err := c.Put(ctx, storage.Hash(held), held); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, storage.Hash(held), held); err != nil { // a rewrite needs no more room
		t.Fatalf("rewriting a held shard at the quota: %v", err)
	}
	stuffing := storagetest.RandomBytes(2, 500)
	err := c.Put(ctx, storage.Hash(stuffing), stuffing)
	if !errors.Is(err, storage.ErrStoreFull) || !strings.Contains(err.Error(), "HTTP 507") || !strings.Contains(err.Error(), "quota of 1000 bytes") {
		t.Fatalf("stuffing put: %v, want 507 naming the quota", err)
	}
	// Streamed, with no Content-Length: stopped as it passes the quota.
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/shards/"+storage.Hash(stuffing), io.MultiReader(bytes.NewReader(stuffing)))
	req.ContentLength = -1
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("streamed stuffing put: HTTP %d, want 507", resp.StatusCode)
	}
	if ok, _ := store.Has(storage.Hash(stuffing)); ok || store.Used() != 600 {
		t.Fatalf("after refusals: stuffing held %v, %d bytes used, want 600", ok, store.Used())
	}
	if got, err := c.Get(ctx, storage.Hash(held)); err != nil || !bytes.Equal(got, held) {
		t.Fatalf("the held shard: %v", err)
	}
	if err := store.Delete(storage.Hash(held)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, storage.Hash(stuffing), stuffing); err != nil {
		t.Fatalf("after a delete freed room: %v", err)
	}
}

// TestShardStore_QuotaCountsWhatIsOnDiskAtOpen: a store reopened over
// shards it held counts them against its quota.
func TestShardStore_QuotaCountsWhatIsOnDiskAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.OpenShardStore(dir, storage.ShardStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := storagetest.RandomBytes(3, 700)
	if err := s.Put(ctx, storage.Hash(d), bytes.NewReader(d)); err != nil {
		t.Fatal(err)
	}
	s, err = storage.OpenShardStore(dir, storage.ShardStoreOptions{MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if s.Used() != 700 || s.MaxBytes() != 1000 {
		t.Fatalf("reopened: used %d of %d, want 700 of 1000", s.Used(), s.MaxBytes())
	}
	e := storagetest.RandomBytes(4, 400)
	if err := s.Put(ctx, storage.Hash(e), bytes.NewReader(e)); !errors.Is(err, storage.ErrStoreFull) {
		t.Fatalf("put past the quota after reopening: %v", err)
	}
	s.SetMaxBytes(0)
	if s.MaxBytes() != storage.DefaultShardQuota {
		t.Fatalf("unset quota is %d, want the default %d", s.MaxBytes(), storage.DefaultShardQuota)
	}
}
