package worker

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestShardAuth_AsksTheGridAndRemembersForAFewSeconds: a storage peer lets
// through the grid's live credentials by role, refuses unknown tokens, asks
// the grid once per token within its TTL, and asks again after it (so a
// revocation reaches it within the TTL).
func TestShardAuth_AsksTheGridAndRemembersForAFewSeconds(t *testing.T) {
	g := newFakeGrid()
	g.tokens = map[string]*api.TokenInfo{
		"sub": {ID: "t-sub", Role: api.CredSubmitter}, "peer": {ID: "t-peer", Role: api.CredPeer},
		"op": {ID: "t-op", Role: api.CredOperator}, "join": {ID: "t-join", Role: api.CredWorker},
	}
	now := time.Unix(1000, 0)
	a := newShardAuth(g, "self-secret")
	a.now = func() time.Time { return now }
	req := func(method string) *http.Request { return httptest.NewRequest(method, "/v1/shards/x", nil) }
	for _, c := range []struct {
		token, method string
		ok            bool
	}{
		{"sub", http.MethodGet, true}, {"sub", http.MethodPut, true}, {"sub", http.MethodDelete, false},
		{"peer", http.MethodDelete, true}, {"op", http.MethodDelete, true}, {"join", http.MethodPut, false},
		{"join", http.MethodGet, true}, {"nobody", http.MethodGet, false}, {"", http.MethodGet, false},
		{"self-secret", http.MethodDelete, true},
	} {
		if err := a.Authorize(req(c.method), c.token); (err == nil) != c.ok {
			t.Errorf("%s %q: %v, want allowed %v", c.method, c.token, err, c.ok)
		}
	}
	checks := func() int { return len(g.callsOf("CheckToken")) }
	before := checks()
	if err := a.Authorize(req(http.MethodGet), "sub"); err != nil || checks() != before {
		t.Fatalf("within the TTL: %v, %d more asks", err, checks()-before)
	}
	delete(g.tokens, "sub") // revoked
	now = now.Add(shardAuthTTL + time.Second)
	if err := a.Authorize(req(http.MethodGet), "sub"); err == nil || checks() != before+1 {
		t.Fatalf("after the TTL a revoked token: %v, %d more asks", err, checks()-before)
	}
}
