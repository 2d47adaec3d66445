package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// capGrid is a server that lists live storage peers and grants put
// capabilities on the peers it knows, counting the grants.
type capGrid struct {
	grants atomic.Int32
	life   atomic.Int64 // of a granted capability

	mu    sync.Mutex
	known []string // peers a grant covers
	live  []string // peers listed live
}

func (g *capGrid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.URL.Path == "/v1/storage/peers" {
		var out []api.StoragePeer
		for _, id := range g.live {
			out = append(out, api.StoragePeer{ID: id, Address: "http://" + id})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	n := g.grants.Add(1)
	var caps []api.PeerCapability
	for _, id := range g.known {
		caps = append(caps, api.PeerCapability{Peer: id, Address: "http://" + id, Op: storage.OpPut,
			Capability: "cap-" + id + string('0'+rune(n)), Expires: time.Now().Add(time.Duration(g.life.Load()))})
	}
	writeJSON(w, http.StatusOK, api.CapabilityResponse{Caps: caps})
}

func (g *capGrid) set(known, live []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known, g.live = known, live
}

// TestPutGrant_ReusedWhileFreshAndCoveringTheLivePeers: uploads share the
// put capabilities last granted while they are recent, cover every live
// peer and are not near their expiry; a put places shards only on peers
// listed live; a peer that joined, or capabilities near their expiry, get
// a new grant, also in the middle of an upload.
func TestPutGrant_ReusedWhileFreshAndCoveringTheLivePeers(t *testing.T) {
	g := &capGrid{}
	g.life.Store(int64(10 * time.Minute))
	g.set([]string{"a", "b", "c"}, []string{"a", "b", "c"})
	srv := httptest.NewServer(g)
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "tok")
	grant, refs, err := c.grantPut(ctx)
	if err != nil || len(refs) != 3 {
		t.Fatalf("first grant: %v, %v", refs, err)
	}
	g.set([]string{"a", "b", "c"}, []string{"a", "c"}) // b marked down
	again, refs, err := c.grantPut(ctx)
	if err != nil || again != grant || g.grants.Load() != 1 || len(refs) != 2 || refs[1].ID != "c" {
		t.Fatalf("with b down: reused %v, %d grants, peers %v, %v; want the grant reused, on a and c only", again == grant, g.grants.Load(), refs, err)
	}
	if tok, err := grant.token(ctx, "a"); err != nil || tok != "cap-a1" {
		t.Fatalf("token %q, %v, want the first grant's", tok, err)
	}
	g.set([]string{"a", "b", "c", "d"}, []string{"a", "c", "d"}) // d joined
	if again, refs, err := c.grantPut(ctx); err != nil || again == grant || g.grants.Load() != 2 || len(refs) != 3 {
		t.Fatalf("with d joined: %d grants, peers %v, %v; want a new grant covering d", g.grants.Load(), refs, err)
	}
	grant = c.putGrants.last
	g.life.Store(int64(capRefresh / 2))
	grant.caps["a"] = api.PeerCapability{Peer: "a", Address: "http://a", Capability: "cap-a2", Expires: time.Now().Add(capRefresh / 2)}
	if tok, err := grant.token(ctx, "a"); err != nil || tok != "cap-a3" {
		t.Fatalf("near its expiry, mid-upload: token %q, %v, want a fresh one", tok, err)
	}
	if _, err := grant.token(ctx, "e"); err == nil {
		t.Fatal("a token for a peer the grid never placed on")
	}
	if again, _, err := c.grantPut(ctx); err != nil || again == grant {
		t.Fatalf("a grant near its expiry was reused: %v", err)
	}
}
