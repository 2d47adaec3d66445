package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
)

// TestQuotas_BlobBytesPastTheCredentialsQuotasAreRefused: a submitter
// allowed 64 KiB of inline blobs and 100 KiB of pins stores an inline blob,
// is refused a second past its inline quota (429, naming the quota, its
// value and the use) and an erasure-coded blob pinned past its pinned
// quota (checked by the leader before it commits the manifest), while the
// same blob unpinned is stored; the listing shows the use.
func TestQuotas_BlobBytesPastTheCredentialsQuotasAreRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 1, Worker: echoRunner{}, StoragePeers: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	inline, pinned := int64(64<<10), int64(100<<10)
	tok, err := g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "small",
		Quotas: api.QuotaOverrides{MaxInlineBytes: &inline, MaxPinnedBytes: &pinned}})
	if err != nil {
		t.Fatal(err)
	}
	sub := g.ClientWith(tok.Secret)
	first := bytes.Repeat([]byte{1}, 40<<10)
	if err := sub.PutBlob(ctx, storage.Hash(first), first); err != nil {
		t.Fatalf("an inline blob within the quota: %v", err)
	}
	second := bytes.Repeat([]byte{2}, 40<<10)
	wantStatus(t, sub.PutBlob(ctx, storage.Hash(second), second), http.StatusTooManyRequests,
		"max_inline_bytes is 65536; it holds 40960 bytes of inline blobs and this one has 40960")

	coded := bytes.Repeat([]byte{3}, 200<<10)
	opts := client.BlobOptions{K: 1, M: 1, InlineThreshold: 16 << 10, Pin: true}
	_, _, err = sub.PutBlobFrom(ctx, bytes.NewReader(coded), int64(len(coded)), opts)
	wantStatus(t, err, http.StatusTooManyRequests, "max_pinned_bytes is 102400; it has 0 bytes pinned and this blob has 204800")
	opts.Pin = false
	if _, _, err := sub.PutBlobFrom(ctx, bytes.NewReader(coded), int64(len(coded)), opts); err != nil {
		t.Fatalf("the same blob unpinned: %v", err)
	}

	toks, err := g.Client().Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range toks {
		if info.ID == tok.ID && (info.Usage == nil || info.Usage.InlineBytes != int64(len(first)) || info.Quotas.MaxPinnedBytes != pinned) {
			t.Fatalf("listing of %s: quotas %+v usage %+v", tok.ID, info.Quotas, info.Usage)
		}
	}
}

func wantStatus(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != code || !strings.Contains(se.Message, msg) {
		t.Fatalf("got %v, want %d saying %q", err, code, msg)
	}
}
