package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/worker"
)

// aclGrid is a dev grid (its worker and two storage peers enrolled with
// their own credentials) and one credential of every role, plus a revoked
// one.
type aclGrid struct {
	g       *devgrid.Grid
	secrets map[string]string // role (and "revoked", "none", "foreign-cert") -> secret
	foreign *http.Client      // presents a certificate of another grid's CA
	dir     string            // the dev grid's data dir
}

func startACLGrid(t *testing.T) *aclGrid {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: dir, Cores: 2, Worker: echoRunner{}, StoragePeers: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	a := &aclGrid{g: g, secrets: map[string]string{api.CredOperator: g.Token, "none": ""}, dir: dir}
	op := g.Client()
	for _, role := range []string{api.CredSubmitter, api.CredWorker} {
		tok, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: role, Name: "test " + role})
		if err != nil {
			t.Fatal(err)
		}
		a.secrets[role] = tok.Secret
	}
	peer, err := g.ClientWith(a.secrets[api.CredWorker]).JoinWorker(ctx, &api.WorkerJoinRequest{Name: "volunteer-1"})
	if err != nil {
		t.Fatal(err)
	}
	a.secrets[api.CredPeer] = peer.Secret
	gone, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredOperator, Name: "to revoke"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.RevokeToken(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	a.secrets["revoked"] = gone.Secret
	a.secrets["foreign-cert"] = g.Token // the operator's token, with a certificate of another grid
	other, err := auth.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := other.IssueKeypair(auth.RoleWorker, "dev-worker", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign := kp.TLS(other.Cert)
	tr := anyCertTransport()
	tr.TLSClientConfig.Certificates = []tls.Certificate{foreign}
	a.foreign = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	return a
}

func (a *aclGrid) client(role string) *client.Client {
	c := a.g.ClientWith(a.secrets[role])
	c.Retries = 1
	return c
}

// do sends one raw request with role's secret and returns the status and body.
func (a *aclGrid) do(t *testing.T, role, method, url string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if s := a.secrets[role]; s != "" {
		req.Header.Set(api.TokenHeader, s)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := anyCert
	if role == "foreign-cert" {
		hc = a.foreign
	}
	resp, err := hc.Do(req)
	if err != nil && role == "foreign-cert" {
		return 0, err.Error() // refused at the handshake
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// concrete fills a route pattern's path values.
func concrete(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{hash}", strings.Repeat("ab", 32), "{id}", "j-000000000000").Replace(path)
	return method, path
}

var callers = []string{api.CredOperator, api.CredSubmitter, api.CredWorker, api.CredPeer, "none", "revoked", "foreign-cert"}

// TestRoutes_RoleMatrix walks every route of the API (and /metrics) with
// every role, no credential, a revoked one and the operator's token with a
// certificate of another grid: a caller without a live credential (or with
// a foreign certificate) gets 401 saying why, a role the matrix does not allow gets
// 403, and an allowed one gets neither (whatever its request body makes of
// the answer). The matrix is the one the README documents.
func TestRoutes_RoleMatrix(t *testing.T) {
	a := startACLGrid(t)
	matrix := a.g.Server.RoleMatrix()
	if len(matrix) < 30 {
		t.Fatalf("the matrix has %d routes", len(matrix))
	}
	for _, rt := range matrix {
		method, path := concrete(rt.Pattern)
		for _, who := range callers {
			code, body := a.do(t, who, method, a.g.Addr+path, []byte("{}"))
			switch {
			case slices.Equal(rt.Roles, []string{"anyone"}): // public: no credential needed
				if code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("%s as %s (public): %d %s", rt.Pattern, who, code, body)
				}
			case who == "none" || who == "revoked" || who == "foreign-cert":
				want := map[string]string{"none": "no credential", "revoked": "revoked", "foreign-cert": "client certificate"}[who]
				if code != http.StatusUnauthorized || !strings.Contains(body, want) {
					t.Errorf("%s as %s: %d %s, want 401 saying %q", rt.Pattern, who, code, body, want)
				}
			case slices.Contains(rt.Roles, who):
				if code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("%s as %s (allowed): %d %s", rt.Pattern, who, code, body)
				}
			default:
				if code != http.StatusForbidden {
					t.Errorf("%s as %s (not allowed): %d %s, want 403", rt.Pattern, who, code, body)
				}
			}
		}
	}
	for _, path := range []string{"/ui/", "/ui/login"} { // the dashboard too
		if code, body := a.do(t, "foreign-cert", http.MethodGet, a.g.Addr+path, nil); code != http.StatusUnauthorized || !strings.Contains(body, "client certificate") {
			t.Errorf("GET %s with another grid's certificate: %d %s, want 401", path, code, body)
		}
	}
	checkREADMEMatrix(t, matrix)
}

// checkREADMEMatrix fails unless README.md's role matrix lists exactly the
// server's routes and roles.
func checkREADMEMatrix(t *testing.T, matrix []server.RouteRoles) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z]+ /[^`]+)` \\| ([^|]+) \\|")
	doc := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		doc[m[1]] = strings.TrimSpace(m[2])
	}
	for _, rt := range matrix {
		want := strings.Join(rt.Roles, ", ")
		if got, ok := doc[rt.Pattern]; !ok || got != want {
			t.Errorf("README's role matrix: `%s` is %q, want %q", rt.Pattern, got, want)
		}
		delete(doc, rt.Pattern)
	}
	for p := range doc {
		t.Errorf("README's role matrix lists `%s`, which is no route", p)
	}
}

// TestShards_RoleMatrix: a storage peer obeys capabilities, not tokens:
// no credential of any role (nor another grid's certificate) writes, reads
// or deletes a shard with its token alone; a put capability the grid
// granted writes on its own peer only; a worker's certificate reads.
func TestShards_RoleMatrix(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	peers, err := a.g.Client().StoragePeers(ctx, false)
	if err != nil || len(peers) < 2 {
		t.Fatalf("storage peers %v, %v", peers, err)
	}
	data := []byte("shard bytes")
	url := func(p api.StoragePeer) string { return p.Address + "/v1/shards/" + storage.Hash(data) }
	for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete} {
		for _, who := range callers {
			if code, body := a.do(t, who, method, url(peers[0]), data); code/100 == 2 {
				t.Errorf("shard %s as %s with its token: %d %s, want refused", method, who, code, body)
			}
		}
	}
	caps, err := a.client(api.CredSubmitter).Capabilities(ctx, storage.OpPut, "")
	if err != nil || len(caps) != len(peers) {
		t.Fatalf("a submitter's put capabilities: %v, %v, want one for each of %d peers", caps, err, len(peers))
	}
	onPeer := map[string]api.PeerCapability{}
	for _, c := range caps {
		onPeer[c.Peer] = c
	}
	mine, theirs := onPeer[peers[0].ID], onPeer[peers[1].ID]
	if code, body := a.doCap(t, http.MethodPut, url(peers[0]), theirs.Capability, data); code != http.StatusForbidden {
		t.Errorf("put with another peer's capability: %d %s, want 403", code, body)
	}
	if code, body := a.doCap(t, http.MethodPut, url(peers[0]), mine.Capability, data); code != http.StatusNoContent {
		t.Fatalf("put with the peer's own capability: %d %s", code, body)
	}
	if code, body := a.doCap(t, http.MethodGet, url(peers[0]), mine.Capability, nil); code/100 == 2 {
		t.Errorf("get with a put capability: %d %s, want refused", code, body)
	}
	if code, body := a.doCap(t, http.MethodDelete, url(peers[0]), mine.Capability, nil); code/100 == 2 {
		t.Errorf("delete with a put capability: %d %s, want refused", code, body)
	}
	if _, err := a.client(api.CredWorker).Capabilities(ctx, storage.OpPut, ""); err == nil {
		t.Error("a join token was granted put capabilities")
	}
	if _, err := a.client(api.CredSubmitter).Capabilities(ctx, "delete", ""); err == nil {
		t.Error("a submitter was granted a delete capability")
	}
	cert, err := worker.ShardTLS(filepath.Join(a.dir, "worker"))
	if err != nil || cert == nil {
		t.Fatalf("the dev worker's certificate: %v", err)
	}
	tr := anyCertTransport()
	tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	withCert := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	resp, err := withCert.Get(url(peers[0]))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("get with a worker's certificate: %d %q", resp.StatusCode, got)
	}
}

// doCap sends one raw shard request with a capability and no credential.
func (a *aclGrid) doCap(t *testing.T, method, url, capability string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if capability != "" {
		req.Header.Set(storage.CapabilityHeader, capability)
	}
	resp, err := anyCert.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signAsServer signs a capability with the dev server's own key, as the
// leader does; ttl may be negative (an expired one).
func (a *aclGrid) signAsServer(t *testing.T, op, peer string, ttl time.Duration, shards ...string) string {
	t.Helper()
	cert, _, err := auth.LoadTLS(filepath.Join(a.dir, "server", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := auth.SignCapability(auth.Capability{Op: op, Peer: peer, Shards: shards, Issued: now.Unix(), Expires: now.Add(ttl).Unix()}, cert)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestShards_DeleteWithoutCapabilityLeavesTheBlobReadable is the attack
// that lost a pinned blob: DELETE of its shards on their peers. With an
// operator's or a submitter's token, another peer's delete capability, an
// expired one or a put capability, every delete is refused and the blob
// reads back whole; a PUT with no capability stores nothing. Only a live
// delete capability for that peer and shard deletes (the leader's garbage
// collector's).
func TestShards_DeleteWithoutCapabilityLeavesTheBlobReadable(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	sub := a.client(api.CredSubmitter)
	data := bytes.Repeat([]byte("pinned blob "), 8<<10)
	hash, m, err := sub.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{K: 2, M: 1, Pin: true, InlineThreshold: 1024})
	if err != nil || m == nil {
		t.Fatalf("blob put: %v (manifest %v)", err, m)
	}
	addr := map[string]string{}
	peers, _ := a.g.Client().StoragePeers(ctx, false)
	for _, p := range peers {
		addr[p.ID] = p.Address
	}
	other := func(id string) string {
		for _, p := range peers {
			if p.ID != id {
				return p.ID
			}
		}
		return ""
	}
	putCaps, err := sub.Capabilities(ctx, storage.OpPut, "")
	if err != nil {
		t.Fatal(err)
	}
	putCap := map[string]string{}
	for _, c := range putCaps {
		putCap[c.Peer] = c.Capability
	}
	for _, sh := range m.Segments[0].Shards {
		url := addr[sh.Peer] + "/v1/shards/" + sh.Hash
		for _, who := range []string{api.CredOperator, api.CredSubmitter, api.CredPeer} {
			if code, body := a.do(t, who, http.MethodDelete, url, nil); code/100 == 2 {
				t.Errorf("DELETE of shard %d as %s: %d %s", 0, who, code, body)
			}
		}
		for name, capability := range map[string]string{
			"another peer's":  a.signAsServer(t, storage.OpDelete, other(sh.Peer), time.Minute, sh.Hash),
			"an expired":      a.signAsServer(t, storage.OpDelete, sh.Peer, -time.Hour, sh.Hash),
			"another shard's": a.signAsServer(t, storage.OpDelete, sh.Peer, time.Minute, storage.Hash([]byte("other"))),
			"a put":           putCap[sh.Peer],
			"a read's":        a.signAsServer(t, storage.OpGet, sh.Peer, time.Minute, sh.Hash),
		} {
			if code, body := a.doCap(t, http.MethodDelete, url, capability, nil); code/100 == 2 {
				t.Errorf("DELETE with %s capability: %d %s", name, code, body)
			}
		}
	}
	stuffing := []byte("stuffing")
	if code, body := a.do(t, api.CredOperator, http.MethodPut, addr[peers[0].ID]+"/v1/shards/"+storage.Hash(stuffing), stuffing); code/100 == 2 {
		t.Errorf("PUT with an operator token and no capability: %d %s", code, body)
	}
	var got bytes.Buffer
	if _, err := sub.ReadBlob(ctx, hash, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("the blob after the attack: %v (%d of %d bytes)", err, got.Len(), len(data))
	}
	if faults, err := sub.StatBlob(ctx, hash); err != nil {
		t.Fatalf("stat: %v", err)
	} else {
		for _, s := range faults.Segments[0].Shards {
			if !s.Healthy {
				t.Errorf("shard %d on %s unhealthy after the attack: %s", s.Index, s.Peer, s.Error)
			}
		}
	}
	// The control: the leader's own kind of order deletes.
	sh := m.Segments[0].Shards[0]
	if code, body := a.doCap(t, http.MethodDelete, addr[sh.Peer]+"/v1/shards/"+sh.Hash, a.signAsServer(t, storage.OpDelete, sh.Peer, time.Minute, sh.Hash), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE with the peer's delete capability: %d %s", code, body)
	}
}

// TestPeers_SpeakOnlyForThemselves: a worker's credential cannot heartbeat,
// lease, report, release or ask about shards as another worker or a
// server, and a second worker cannot take an id already held.
func TestPeers_SpeakOnlyForThemselves(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	me := a.client(api.CredPeer)
	for _, other := range []string{"dev-worker", "dev-server"} {
		if _, err := me.Heartbeat(ctx, &api.HeartbeatRequest{Worker: other, Address: "http://evil.example:1", Cores: 64}); !forbidden(err) {
			t.Errorf("heartbeat as %s: %v", other, err)
		}
		if _, err := me.Lease(ctx, &api.LeaseRequest{Worker: other, Max: 1}); !forbidden(err) {
			t.Errorf("lease as %s: %v", other, err)
		}
		if _, err := me.Report(ctx, &api.ReportRequest{Worker: other, Reports: []api.Report{{TaskRef: api.TaskRef{Job: "j", Index: 0, Attempt: 1}}}}); !forbidden(err) {
			t.Errorf("report as %s: %v", other, err)
		}
		if err := me.Release(ctx, &api.ReleaseRequest{Worker: other, Tasks: []api.TaskRef{{Job: "j", Index: 0, Attempt: 1}}}); !forbidden(err) {
			t.Errorf("release as %s: %v", other, err)
		}
		if _, err := me.PlacedShards(ctx, other, []string{strings.Repeat("a", 64)}); !forbidden(err) {
			t.Errorf("placed shards as %s: %v", other, err)
		}
	}
	// As itself, with no id in the request, it is volunteer-1.
	if _, err := me.Heartbeat(ctx, &api.HeartbeatRequest{Cores: 2}); err != nil {
		t.Fatalf("heartbeat as itself: %v", err)
	}
	peers, err := a.g.Client().Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.ID == "dev-server" && strings.Contains(p.Address, "evil") {
			t.Fatalf("the server's address was changed: %+v", p)
		}
	}
	if !slices.ContainsFunc(peers, func(p api.Peer) bool { return p.ID == "volunteer-1" && p.State == api.PeerAlive }) {
		t.Fatalf("volunteer-1 not alive in %+v", peers)
	}
	// A second join for an id already held, and a join as the server.
	for _, id := range []string{"volunteer-1", "dev-server"} {
		if _, err := a.client(api.CredWorker).JoinWorker(ctx, &api.WorkerJoinRequest{Name: id}); err == nil || !strings.Contains(err.Error(), "already held") {
			t.Errorf("join as %s: %v, want refused as held", id, err)
		}
	}
}

func forbidden(err error) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == http.StatusForbidden && strings.Contains(se.Message, "speaks only for itself")
}

// TestSubmitters_SeeOnlyTheirOwn: a submitter's jobs and blobs are its own:
// another submitter cannot list, read, cancel, purge or fetch them, nor
// read or unpin its blobs; the operator sees everything.
func TestSubmitters_SeeOnlyTheirOwn(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	other, err := a.g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	alice, mallory := a.client(api.CredSubmitter), a.g.ClientWith(other.Secret)
	id := submitEcho(t, alice, 3)
	secret := []byte("alice's data")
	if err := alice.PutBlob(ctx, storage.Hash(secret), secret); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if jobs, err := mallory.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("mallory lists %v, %v", jobs, err)
	}
	if jobs, err := alice.Jobs(ctx); err != nil || len(jobs) != 1 || jobs[0].ID != id {
		t.Errorf("alice lists %v, %v", jobs, err)
	}
	notFound := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, client.ErrNotFound) {
			t.Errorf("mallory %s: %v, want not found", what, err)
		}
	}
	_, err = mallory.Job(ctx, id)
	notFound("reads alice's job", err)
	_, err = mallory.Results(ctx, id)
	notFound("fetches alice's results", err)
	notFound("cancels alice's job", mallory.Cancel(ctx, id))
	notFound("purges alice's job", mallory.Purge(ctx, id))
	_, err = mallory.GetBlob(ctx, storage.Hash(secret))
	notFound("reads alice's blob", err)
	notFound("unpins alice's blob", mallory.Unpin(ctx, storage.Hash(secret)))
	if has, err := mallory.HasBlob(ctx, storage.Hash(secret)); has || err != nil {
		t.Errorf("mallory learns alice's blob exists: %v, %v", has, err)
	}
	if res, err := alice.Results(ctx, id); err != nil || len(res) != 3 || res[0].State != tasks.TaskDone {
		t.Errorf("alice's results: %v, %v", res, err)
	}
	if got, err := alice.GetBlob(ctx, storage.Hash(secret)); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("alice reads her blob: %q, %v", got, err)
	}
	if st, err := a.g.Client().Job(ctx, id); err != nil || st.ID != id {
		t.Errorf("the operator reads alice's job: %v", err)
	}
	// The dashboard shows each what its credential may see.
	if r := uiGet(t, a.g.Addr, "/ui/", nil, api.TokenHeader, other.Secret); r.code != http.StatusOK || strings.Contains(r.body, id) {
		t.Errorf("mallory's overview: %d, shows alice's job %v", r.code, strings.Contains(r.body, id))
	}
	if r := uiGet(t, a.g.Addr, "/ui/", nil, api.TokenHeader, a.secrets[api.CredSubmitter]); r.code != http.StatusOK || !strings.Contains(r.body, id) {
		t.Errorf("alice's overview: %d, shows her job %v", r.code, strings.Contains(r.body, id))
	}
	if r := uiGet(t, a.g.Addr, "/ui/jobs/"+id, nil, api.TokenHeader, other.Secret); r.code != http.StatusNotFound {
		t.Errorf("mallory's view of alice's job page: %d, want 404", r.code)
	}
	if r := uiGet(t, a.g.Addr, "/ui/blobs/"+storage.Hash(secret), nil, api.TokenHeader, other.Secret); r.code != http.StatusNotFound {
		t.Errorf("mallory's view of alice's blob page: %d, want 404", r.code)
	}
}

// TestTokens_CreateListRevoke: a created credential works at once, shows
// in the list without its secret, and a revoked one is refused with 401
// saying so; a worker token's uses run out.
func TestTokens_CreateListRevoke(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	op := a.g.Client()
	tok, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker, Name: "lab", Uses: 1, MaxCores: 2, TTL: time.Hour})
	if err != nil || !strings.HasPrefix(tok.Secret, "pgt_") || tok.UsesLeft == nil || *tok.UsesLeft != 1 || tok.Expires == nil {
		t.Fatalf("create: %+v, %v", tok, err)
	}
	list, err := op.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(list)
	if !strings.Contains(string(raw), tok.ID) || strings.Contains(string(raw), tok.Secret) || strings.Contains(string(raw), "hash") {
		t.Fatalf("the list should name %s and carry no secret or hash: %s", tok.ID, raw)
	}
	joiner := a.g.ClientWith(tok.Secret)
	if _, err := joiner.JoinWorker(ctx, &api.WorkerJoinRequest{Name: "lab-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := joiner.JoinWorker(ctx, &api.WorkerJoinRequest{Name: "lab-2"}); err == nil || !strings.Contains(err.Error(), "no uses left") {
		t.Fatalf("a second join with a one-use token: %v", err)
	}
	sub := a.client(api.CredSubmitter)
	if _, err := sub.Jobs(ctx); err != nil {
		t.Fatal(err)
	}
	infos, _ := op.Tokens(ctx)
	for _, info := range infos {
		if info.Role == api.CredSubmitter && info.Revoked == nil {
			if _, err := op.RevokeToken(ctx, info.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := sub.Jobs(ctx); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a revoked submitter: %v, want 401 saying revoked", err)
	}
}

// TestUpgrade_ClusterTokenBecomesAnOperatorCredential: a grid's cluster
// token (a data dir from before credentials has only that) is registered as
// the operator credential t-cluster by the first leader, and keeps working.
func TestUpgrade_ClusterTokenBecomesAnOperatorCredential(t *testing.T) {
	a := startACLGrid(t)
	toks, err := a.g.Client().Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(toks, func(ti api.TokenInfo) bool {
		return ti.ID == "t-cluster" && ti.Role == api.CredOperator && ti.Revoked == nil
	}) {
		t.Fatalf("no live operator t-cluster among %+v", toks)
	}
}

// TestPeers_CoresAreCappedByTheirJoinToken: a worker joined with a token
// that allows 2 cores is listed with 2, whatever it claims.
func TestPeers_CoresAreCappedByTheirJoinToken(t *testing.T) {
	a := startACLGrid(t)
	ctx := context.Background()
	tok, err := a.g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker, MaxCores: 2})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := a.g.ClientWith(tok.Secret).JoinWorker(ctx, &api.WorkerJoinRequest{Name: "greedy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.ClientWith(joined.Secret).Heartbeat(ctx, &api.HeartbeatRequest{Cores: 100000}); err != nil {
		t.Fatal(err)
	}
	peers, err := a.g.Client().Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(peers, func(p api.Peer) bool { return p.ID == "greedy" })
	if i < 0 || peers[i].Cores != 2 {
		t.Fatalf("greedy listed as %+v, want 2 cores", peers)
	}
}

// TestShards_ReadThroughSeveralCapabilitiesPerPeer: a peer holding more of
// a blob's shards than one capability names is given several, and a
// reader without a certificate sends each shard request the one that
// covers it.
func TestShards_ReadThroughSeveralCapabilitiesPerPeer(t *testing.T) {
	server.SetMaxCapShards(t, 1)
	a := startACLGrid(t)
	ctx := context.Background()
	sub := a.client(api.CredSubmitter)
	data := bytes.Repeat([]byte("three segments "), 9<<20/15)
	hash, m, err := sub.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{K: 2, M: 1})
	if err != nil || len(m.Segments) < 2 {
		t.Fatalf("blob put: %v (%d segments)", err, len(m.Segments))
	}
	caps, err := sub.Capabilities(ctx, storage.OpGet, hash)
	if err != nil || len(caps) != 3*len(m.Segments) {
		t.Fatalf("%d get capabilities, %v, want one per shard (%d)", len(caps), err, 3*len(m.Segments))
	}
	var got bytes.Buffer
	if _, err := sub.ReadBlob(ctx, hash, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read: %v (%d of %d bytes)", err, got.Len(), len(data))
	}
}

// TestShards_GarbageCollectionDeletesThroughSeveralCapabilitiesPerPeer:
// the leader deletes a collected blob's shards from their peers with
// delete capabilities naming them, one per shard when a capability may
// name only one, and every shard goes.
func TestShards_GarbageCollectionDeletesThroughSeveralCapabilitiesPerPeer(t *testing.T) {
	server.SetMaxCapShards(t, 1)
	dir := t.TempDir()
	g, err := devgrid.Start(context.Background(), devgrid.Config{DataDir: dir, Cores: 1, Worker: echoRunner{}, StoragePeers: 2, Logger: quiet,
		GCInterval: 50 * time.Millisecond, GCGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ctx := context.Background()
	data := bytes.Repeat([]byte("collected "), 9<<20/10)
	_, m, err := g.Client().PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{K: 2, M: 1})
	if err != nil || len(m.Segments) < 2 {
		t.Fatalf("blob put: %v", err)
	}
	shardFile := func(sh storage.Shard) string {
		peerDir := filepath.Join(dir, "worker")
		if sh.Peer != "dev-worker" {
			peerDir = filepath.Join(dir, strings.TrimPrefix(sh.Peer, "dev-"))
		}
		return filepath.Join(peerDir, "shards", "shards", sh.Hash[:2], sh.Hash)
	}
	for _, sh := range m.Segments[0].Shards {
		if _, err := os.Stat(shardFile(sh)); err != nil {
			t.Fatalf("shard on %s not where the test looks: %v", sh.Peer, err)
		}
	}
	testcluster.Eventually(t, 20*time.Second, "every shard of the collected blob deleted", func() bool {
		for _, seg := range m.Segments {
			for _, sh := range seg.Shards {
				if _, err := os.Stat(shardFile(sh)); err == nil {
					return false
				}
			}
		}
		return true
	})
}
