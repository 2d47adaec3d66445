package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestPlacedShards_StaleIsIgnored: the placed-shards route drops ?stale=true
// before the read wrapper sees it, so a lagging follower never answers it
// from its own copy.
func TestPlacedShards_StaleIsIgnored(t *testing.T) {
	var got url.Values
	h := consistent(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Query() }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/storage/shards/placed?stale=true&x=1", nil))
	if got.Has("stale") || got.Get("x") != "1" {
		t.Fatalf("query after the wrapper: %v", got)
	}
}
