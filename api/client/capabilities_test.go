package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// TestPutGrant_AsksAgainOnlyNearTheExpiry: an upload uses the put
// capabilities it was granted while they have more than capRefresh left,
// and asks the grid for fresh ones after, so a long put outlives them.
func TestPutGrant_AsksAgainOnlyNearTheExpiry(t *testing.T) {
	var asks atomic.Int32
	var life atomic.Int64
	life.Store(int64(10 * time.Minute))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := asks.Add(1)
		exp := time.Now().Add(time.Duration(life.Load()))
		writeJSON(w, http.StatusOK, api.CapabilityResponse{Caps: []api.PeerCapability{
			{Peer: "b", Address: "http://b", Op: storage.OpPut, Capability: "cap-b" + string('0'+rune(n)), Expires: exp},
			{Peer: "a", Address: "http://a", Op: storage.OpPut, Capability: "cap-a" + string('0'+rune(n)), Expires: exp},
		}})
	}))
	defer srv.Close()
	ctx := context.Background()
	g, err := New(srv.URL, "tok").grantPut(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if refs := g.peers(); len(refs) != 2 || refs[0].ID != "a" || refs[1].Addr != "http://b" {
		t.Fatalf("peers %v, want a and b in order", refs)
	}
	for range 3 {
		if tok, err := g.token(ctx, "a"); err != nil || tok != "cap-a1" {
			t.Fatalf("token %q, %v, want the first grant's", tok, err)
		}
	}
	life.Store(int64(capRefresh / 2))
	g.caps["a"] = api.PeerCapability{Peer: "a", Address: "http://a", Capability: "cap-a1", Expires: time.Now().Add(capRefresh / 2)}
	if tok, err := g.token(ctx, "a"); err != nil || tok != "cap-a2" || asks.Load() != 2 {
		t.Fatalf("near its expiry: token %q, %v after %d asks, want a fresh one", tok, err, asks.Load())
	}
	if _, err := g.token(ctx, "c"); err == nil {
		t.Fatal("a token for a peer the grid never placed on")
	}
}
