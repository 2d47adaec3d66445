package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
)

// gridCA is a cluster CA with a server's and a worker's certificate, made
// once for the package's tests.
type gridCA struct {
	ca             *auth.CA
	server, worker tls.Certificate
}

var testGrid = sync.OnceValue(func() *gridCA { return newGridCA("srv", "s1") })

func testGridCA() *gridCA { return testGrid() }

func newGridCA(server, worker string) *gridCA {
	now := time.Now()
	ca, err := auth.NewCA(now)
	if err != nil {
		panic(err)
	}
	g := &gridCA{ca: ca}
	for role, dst := range map[string]*tls.Certificate{auth.RoleServer: &g.server, auth.RoleWorker: &g.worker} {
		id := map[string]string{auth.RoleServer: server, auth.RoleWorker: worker}[role]
		kp, err := ca.IssueKeypair(role, id, now)
		if err != nil {
			panic(err)
		}
		*dst = kp.TLS(ca.Cert)
	}
	return g
}

// capFor signs a capability with the server's certificate, valid for ttl.
func (g *gridCA) capFor(t *testing.T, signer tls.Certificate, op, peer string, ttl time.Duration, shards ...string) string {
	t.Helper()
	now := time.Now()
	tok, err := auth.SignCapability(auth.Capability{Op: op, Peer: peer, Shards: shards, Issued: now.Unix(), Expires: now.Add(ttl).Unix()}, &signer)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestShardAuth_ObeysOnlyCapabilitiesForThisPeerOpAndShard: a write or
// delete needs a capability a server of this grid signed for this peer,
// this op and this shard (a put capability may leave the shards open), not
// expired; reads need one too, or a certificate of the grid. Tokens, other
// peers', expired, tampered, workers' and other grids' capabilities are
// refused.
func TestShardAuth_ObeysOnlyCapabilitiesForThisPeerOpAndShard(t *testing.T) {
	g := testGridCA()
	other := newGridCA("srv", "s1")
	a := newShardAuth("s1", g.ca.Cert, newFakeGrid())
	shard, another := storage.Hash([]byte("a")), storage.Hash([]byte("b"))
	// The payload of a capability for shard under the signature of one for another.
	signed := strings.Split(g.capFor(t, g.server, storage.OpDelete, "s1", time.Minute, another), ".")
	signed[0] = strings.Split(g.capFor(t, g.server, storage.OpDelete, "s1", time.Minute, shard), ".")[0]
	tampered := strings.Join(signed, ".")
	for _, c := range []struct {
		name, method, cap, token string
		cert                     *tls.Certificate
		ok                       bool
	}{
		{name: "put, none", method: http.MethodPut},
		{name: "put with an operator token", method: http.MethodPut, token: "operator-secret"},
		{name: "put for this peer", method: http.MethodPut, cap: g.capFor(t, g.server, storage.OpPut, "s1", time.Minute), ok: true},
		{name: "put naming the shard", method: http.MethodPut, cap: g.capFor(t, g.server, storage.OpPut, "s1", time.Minute, shard), ok: true},
		{name: "put naming another shard", method: http.MethodPut, cap: g.capFor(t, g.server, storage.OpPut, "s1", time.Minute, another)},
		{name: "put for another peer", method: http.MethodPut, cap: g.capFor(t, g.server, storage.OpPut, "s2", time.Minute)},
		{name: "delete, none", method: http.MethodDelete},
		{name: "delete with a token", method: http.MethodDelete, token: "operator-secret"},
		{name: "delete with a put capability", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpPut, "s1", time.Minute)},
		{name: "delete with an open delete capability", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpDelete, "s1", time.Minute)},
		{name: "delete for this shard", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpDelete, "s1", time.Minute, shard), ok: true},
		{name: "delete for another peer", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpDelete, "s2", time.Minute, shard)},
		{name: "delete, expired", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpDelete, "s1", -auth.CapabilitySkew-time.Second, shard)},
		{name: "delete, within the skew", method: http.MethodDelete, cap: g.capFor(t, g.server, storage.OpDelete, "s1", -auth.CapabilitySkew/2, shard), ok: true},
		{name: "delete signed by a worker", method: http.MethodDelete, cap: g.capFor(t, g.worker, storage.OpDelete, "s1", time.Minute, shard)},
		{name: "delete signed by another grid", method: http.MethodDelete, cap: other.capFor(t, other.server, storage.OpDelete, "s1", time.Minute, shard)},
		{name: "delete, tampered", method: http.MethodDelete, cap: tampered},
		{name: "delete, garbage", method: http.MethodDelete, cap: "x.y.z"},
		{name: "get, none", method: http.MethodGet},
		{name: "get with a token", method: http.MethodGet, token: "operator-secret"},
		{name: "get for this shard", method: http.MethodGet, cap: g.capFor(t, g.server, storage.OpGet, "s1", time.Minute, shard), ok: true},
		{name: "head for this shard", method: http.MethodHead, cap: g.capFor(t, g.server, storage.OpGet, "s1", time.Minute, shard), ok: true},
		{name: "get for another shard", method: http.MethodGet, cap: g.capFor(t, g.server, storage.OpGet, "s1", time.Minute, another)},
		{name: "get with a worker's certificate", method: http.MethodGet, cert: &g.worker, ok: true},
		{name: "get with a server's certificate", method: http.MethodGet, cert: &g.server, ok: true},
		{name: "get with another grid's certificate", method: http.MethodGet, cert: &other.worker},
		{name: "delete with a worker's certificate", method: http.MethodDelete, cert: &g.worker},
		{name: "put with a server's certificate", method: http.MethodPut, cert: &g.server},
	} {
		r := httptest.NewRequest(c.method, "/v1/shards/"+shard, nil)
		if c.cap != "" {
			r.Header.Set(storage.CapabilityHeader, c.cap)
		}
		if c.token != "" {
			r.Header.Set(storage.TokenHeader, c.token)
		}
		if c.cert != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: parseChain(t, c.cert)}
		}
		err := a.Authorize(r, shard)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want allowed %v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, auth.ErrCapability) && !errors.Is(err, auth.ErrNoCapability) && !errors.Is(err, auth.ErrWrongCA) {
			t.Errorf("%s: %v, want a capability or certificate error", c.name, err)
		}
	}
}

// TestShardAuth_LearnsTheCAFromTheGridWhenServingWithoutTLS: a peer with
// no certificate (no TLS) asks the grid for its CA once, then checks
// capabilities against it.
func TestShardAuth_LearnsTheCAFromTheGridWhenServingWithoutTLS(t *testing.T) {
	g := testGridCA()
	fg := newFakeGrid()
	a := newShardAuth("s1", nil, fg)
	shard := storage.Hash([]byte("a"))
	for range 2 {
		r := httptest.NewRequest(http.MethodPut, "/v1/shards/"+shard, nil)
		r.Header.Set(storage.CapabilityHeader, g.capFor(t, g.server, storage.OpPut, "s1", time.Minute))
		if err := a.Authorize(r, shard); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fg.callsOf("ServerInfo")); n != 1 {
		t.Fatalf("asked the grid for its CA %d times, want once", n)
	}
}

func parseChain(t *testing.T, c *tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}
