package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// uiResp is one dashboard response, redirects not followed.
type uiResp struct {
	code     int
	location string
	cookies  []*http.Cookie
	header   http.Header
	body     string
}

var noRedirects = &http.Client{Timeout: 30 * time.Second, Transport: anyCertTransport(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// anyCertTransport accepts any server certificate. The route, role and
// dashboard tests talk to a grid they just started, as a browser that was
// shown its certificate would; pinning is tested in tls_test.go.
func anyCertTransport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
}

// anyCert is a plain HTTP client over anyCertTransport.
var anyCert = &http.Client{Timeout: 30 * time.Second, Transport: anyCertTransport()}

func uiDo(t *testing.T, hc *http.Client, req *http.Request) uiResp {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return uiResp{code: resp.StatusCode, location: resp.Header.Get("Location"), cookies: resp.Cookies(), header: resp.Header, body: string(body)}
}

// uiGet GETs base+path with the cookie (if any) and extra header pairs.
func uiGet(t *testing.T, base, path string, cookie *http.Cookie, header ...string) uiResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return uiDo(t, noRedirects, req)
}

// uiPost posts a form as a browser on one of the dashboard's own pages
// would: with the server's origin.
func uiPost(t *testing.T, hc *http.Client, base, path string, form url.Values, cookies ...*http.Cookie) uiResp {
	t.Helper()
	return uiPostFrom(t, hc, base, path, form, "Origin", base, cookies...)
}

// uiPostFrom posts a form with the given origin header ("Origin" or
// "Referer", and its value; "" sends neither).
func uiPostFrom(t *testing.T, hc *http.Client, base, path string, form url.Values, header, origin string, cookies ...*http.Cookie) uiResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if header != "" {
		req.Header.Set(header, origin)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return uiDo(t, hc, req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]*)"`)

// uiForm GETs a page (the login form, or a signed-in page with cookie)
// and returns the CSRF value its forms carry, and for the login form the
// cookie that goes with it.
func uiForm(t *testing.T, hc *http.Client, base, path string, cookie *http.Cookie) (string, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	r := uiDo(t, hc, req)
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil || m[1] == "" {
		t.Fatalf("GET %s: no CSRF field in the page (%d)\n%s", path, r.code, r.body)
	}
	for _, c := range r.cookies {
		if c.Name == "peergrid_csrf" {
			if c.Value != m[1] || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("CSRF cookie %+v does not match the form's %q or is not HttpOnly, SameSite=Strict", c, m[1])
			}
			return m[1], &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	return m[1], nil
}

// uiLoginPost posts a token to the login form, as a browser that loaded it.
func uiLoginPost(t *testing.T, hc *http.Client, base, token string) uiResp {
	t.Helper()
	csrf, c := uiForm(t, hc, base, "/ui/login", nil)
	return uiPost(t, hc, base, "/ui/login", url.Values{"token": {token}, "csrf": {csrf}}, c)
}

// sessionCookie is the response's session cookie (nil if it set none).
func sessionCookie(r uiResp) *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == "peergrid_session" {
			return c
		}
	}
	return nil
}

// uiLogin signs in with the token and checks the cookie it gets.
func uiLogin(t *testing.T, hc *http.Client, base, token string, wantSecure bool) *http.Cookie {
	t.Helper()
	r := uiLoginPost(t, hc, base, token)
	if r.code != http.StatusSeeOther || r.location != "/ui/" {
		t.Fatalf("login with the right token: %d, Location %q, want 303 to /ui/\n%s", r.code, r.location, r.body)
	}
	c := sessionCookie(r)
	if c == nil {
		t.Fatalf("login set no session cookie: %v", r.header.Values("Set-Cookie"))
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != wantSecure || c.Path != "/ui/" || c.Value == "" {
		t.Fatalf("cookie %q: HttpOnly %v, SameSite %v, Secure %v (want %v), Path %q", r.header.Get("Set-Cookie"), c.HttpOnly, c.SameSite, c.Secure, wantSecure, c.Path)
	}
	if raw := r.header.Get("Set-Cookie"); !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
		t.Fatalf("Set-Cookie %q lacks HttpOnly or SameSite=Strict", raw)
	}
	if strings.Contains(r.location, token) {
		t.Fatal("the token is in the redirect URL")
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}
}

func wantPage(t *testing.T, what string, r uiResp, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.code, code, r.body)
	}
	if code == http.StatusOK && !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s: Content-Type %q", what, r.header.Get("Content-Type"))
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) {
			t.Fatalf("%s: page lacks %q\n%s", what, s, r.body)
		}
	}
}

// TestDashboard_Auth: the login form, the cookie, redirects without it, and
// the JSON API unchanged (the cookie opens /ui/ only).
func TestDashboard_Auth(t *testing.T) {
	g := startServerGrid(t)

	// Without the token every page sends the browser to the login form.
	for _, p := range []string{"/ui/", "/ui/jobs/j-123", "/ui/blobs/" + strings.Repeat("ab", 32), "/ui/nope", "/ui/go?job=j-1"} {
		if r := uiGet(t, g.Addr, p, nil); r.code != http.StatusSeeOther || r.location != "/ui/login" {
			t.Errorf("GET %s without the token: %d, Location %q, want 303 to /ui/login", p, r.code, r.location)
		}
		if r := uiGet(t, g.Addr, p, &http.Cookie{Name: "peergrid_session", Value: "d3Jvbmc"}); r.code != http.StatusSeeOther || r.location != "/ui/login" {
			t.Errorf("GET %s with a wrong cookie: %d, Location %q, want 303 to /ui/login", p, r.code, r.location)
		}
	}
	if r := uiGet(t, g.Addr, "/ui", nil); r.code != http.StatusSeeOther || r.location != "/ui/" {
		t.Errorf("GET /ui: %d %q, want 303 to /ui/", r.code, r.location)
	}
	form := uiGet(t, g.Addr, "/ui/login", nil)
	wantPage(t, "login form", form, http.StatusOK, `<form method="post" action="/ui/login"`, `name="token"`, `type="password"`)
	if strings.Contains(form.body, "dev-server") || strings.Contains(form.body, `http-equiv="refresh"`) {
		t.Errorf("the login form shows server details or refreshes:\n%s", form.body)
	}

	// A wrong token: the form again, with a message, and no cookie.
	for _, wrong := range []string{"", g.Token + "x", g.Token[:len(g.Token)-1], "<script>"} {
		r := uiLoginPost(t, noRedirects, g.Addr, wrong)
		wantPage(t, "login with a wrong token", r, http.StatusUnauthorized, "not a live credential", `name="token"`)
		if sessionCookie(r) != nil {
			t.Errorf("login with %q set %v", wrong, r.header.Values("Set-Cookie"))
		}
		if strings.Contains(r.body, "<script>") {
			t.Errorf("the wrong token was echoed unescaped")
		}
	}
	// The token is taken from the form body only, never from the URL.
	csrf, csrfCookie := uiForm(t, noRedirects, g.Addr, "/ui/login", nil)
	r := uiPost(t, noRedirects, g.Addr, "/ui/login?token="+url.QueryEscape(g.Token), url.Values{"csrf": {csrf}}, csrfCookie)
	if r.code != http.StatusUnauthorized || sessionCookie(r) != nil {
		t.Errorf("login with the token in the query: %d, cookies %v, want 401 and none", r.code, r.cookies)
	}

	cookie := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	home := uiGet(t, g.Addr, "/ui/", cookie)
	wantPage(t, "overview", home, http.StatusOK, "dev-server", `http-equiv="refresh" content="5"`, `<span class="ok">leader</span>`, `action="/ui/logout"`)
	if strings.Contains(home.body, g.Token) {
		t.Error("the overview shows the token")
	}
	if csp := home.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if r := uiGet(t, g.Addr, "/ui/login", cookie); r.code != http.StatusSeeOther || r.location != "/ui/" {
		t.Errorf("GET /ui/login signed in: %d %q, want 303 to /ui/", r.code, r.location)
	}
	// A pasted token's trailing newline is forgiven.
	uiLogin(t, noRedirects, g.Addr, g.Token+"\n", true)
	// The usual header works on /ui/ too.
	wantPage(t, "overview with the header", uiGet(t, g.Addr, "/ui/", nil, api.TokenHeader, g.Token), http.StatusOK, "dev-server")

	// The JSON API and /metrics ignore the cookie: 401 without the header, as before.
	for _, p := range []string{"/v1/jobs", "/v1/peers", "/v1/status", "/metrics", "/ui/../v1/jobs"} {
		r := uiGet(t, g.Addr, p, cookie)
		if p == "/ui/../v1/jobs" { // cleaned by the dashboard's mux to the API path, which refuses
			if r.code/100 == 3 && strings.HasPrefix(r.location, "/v1/") {
				r = uiGet(t, g.Addr, r.location, cookie)
			}
		}
		if r.code != http.StatusUnauthorized || !strings.Contains(r.body, "unauthorized: no credential") {
			t.Errorf("GET %s with the cookie but no header: %d, want 401\n%s", p, r.code, r.body)
		}
	}
	if r := uiGet(t, g.Addr, "/v1/jobs", nil, api.TokenHeader, g.Token); r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /v1/jobs with the header: %d %q", r.code, r.header.Get("Content-Type"))
	}

	// Sign out clears the cookie; the form carries the session's CSRF token.
	if out := uiPost(t, noRedirects, g.Addr, "/ui/logout", url.Values{}, cookie); out.code != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", out.code)
	}
	logoutCSRF, _ := uiForm(t, noRedirects, g.Addr, "/ui/", cookie)
	out := uiPost(t, noRedirects, g.Addr, "/ui/logout", url.Values{"csrf": {logoutCSRF}}, cookie)
	if c := sessionCookie(out); out.code != http.StatusSeeOther || out.location != "/ui/login" || c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("logout: %d %q %v", out.code, out.location, out.header.Values("Set-Cookie"))
	}

	// The server speaks TLS, so its cookie is Secure (above). Its handler
	// mounted on plain HTTP (as behind a TLS-terminating proxy) marks the
	// cookie Secure only when the proxy says the browser used https.
	ts := httptest.NewServer(g.Server.Handler())
	defer ts.Close()
	uiLogin(t, noRedirects, ts.URL, g.Token, false)
	csrf, csrfCookie = uiForm(t, noRedirects, ts.URL, "/ui/login", nil)
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/ui/login", strings.NewReader(url.Values{"token": {g.Token}, "csrf": {csrf}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Origin", "https://"+strings.TrimPrefix(ts.URL, "http://")) // what the browser saw
	req.AddCookie(csrfCookie)
	if r := uiDo(t, noRedirects, req); sessionCookie(r) == nil || !sessionCookie(r).Secure {
		t.Errorf("login behind a TLS proxy: Set-Cookie %v, want Secure", r.header.Values("Set-Cookie"))
	}
}

// TestDashboard_LoginIsLimitedAndChecksCSRF: a login without the form's
// CSRF token (a post from another site) is refused, and an address that
// keeps guessing tokens is slowed down.
func TestDashboard_LoginIsLimitedAndChecksCSRF(t *testing.T) {
	g := startServerGrid(t)
	if r := uiPost(t, noRedirects, g.Addr, "/ui/login", url.Values{"token": {g.Token}}); r.code != http.StatusForbidden || sessionCookie(r) != nil {
		t.Fatalf("login without the CSRF token: %d, session %v; want 403 and none", r.code, sessionCookie(r))
	}
	csrf, c := uiForm(t, noRedirects, g.Addr, "/ui/login", nil)
	if r := uiPost(t, noRedirects, g.Addr, "/ui/login", url.Values{"token": {g.Token}, "csrf": {csrf + "0"}}, c); r.code != http.StatusForbidden {
		t.Fatalf("login with a wrong CSRF token: %d, want 403", r.code)
	}
	limited := 0
	for range 30 {
		if r := uiLoginPost(t, noRedirects, g.Addr, "guess"); r.code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 15 {
		t.Fatalf("30 quick wrong guesses: %d limited, want most", limited)
	}
	r := uiLoginPost(t, noRedirects, g.Addr, g.Token)
	if r.code != http.StatusTooManyRequests || sessionCookie(r) != nil {
		t.Fatalf("even the right token waits out the limit: %d", r.code)
	}
	if s := retryAfter(r); s < 1 || s > 12 || !strings.Contains(r.body, "Too many sign-in attempts") {
		t.Fatalf("429: Retry-After %q, want 1..12 seconds (one attempt per 12s), and a message\n%s", r.header.Get("Retry-After"), r.body)
	}
}

// TestDashboard_DevGrid runs a job and stores an erasure-coded blob on a dev
// grid with a worker and five storage-only peers, then reads the overview,
// the job page (paginated) and the blob page.
func TestDashboard_DevGrid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 4, Worker: echoRunner{}, StoragePeers: 5, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()

	const n = 250 // more than a page of tasks (200)
	const name = `<b>"x" & 'y'</b>`
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: name, ModuleHash: storage.Hash(mod), Args: []string{"{index}"},
		Tasks: n, Timeout: 2 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.WaitJob(ctx, id, 10*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete || sum.Done != n {
		t.Fatalf("job %s: %+v %v", id, sum, err)
	}
	data := bytes.Repeat([]byte("dashboard shard health "), 5000) // ~112 KiB: over the 16 KiB inline threshold
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put a coded blob: %v (manifest %v)", err, m)
	}
	cookie := uiLogin(t, noRedirects, g.Addr, g.Token, true)

	// Overview: the job with its done count, the peers, storage.
	home := uiGet(t, g.Addr, "/ui/", cookie)
	wantPage(t, "overview", home, http.StatusOK, "dev-worker", "dev-storage-5", "6 live of 6", "Erasure-coded blobs</dt><dd>1 ")
	row := tableRow(t, home.body, `href="/ui/jobs/`+id+`"`)
	for _, want := range []string{
		`<td>&lt;b&gt;&#34;x&#34; &amp; &#39;y&#39;&lt;/b&gt;</td>`, // the name, escaped
		`<td class="num">` + fmt.Sprint(n) + `</td>`,                // done and total
		"complete", `style="width: 100.00%"`,
	} {
		if !strings.Contains(row, want) {
			t.Errorf("overview's row of job %s lacks %q:\n%s", id, want, row)
		}
	}
	if strings.Contains(home.body, name) {
		t.Error("the job's name is on the overview unescaped")
	}
	peerRow := tableRow(t, home.body, `<td class="mono">dev-worker</td>`)
	if !strings.Contains(peerRow, "worker") || !strings.Contains(peerRow, `<td class="num">4</td>`) || !strings.Contains(peerRow, `<td class="num">`+fmt.Sprint(n)+`</td>`) {
		t.Errorf("overview's dev-worker row (roles, 4 cores, %d done):\n%s", n, peerRow)
	}
	apiPeers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range apiPeers {
		if p.ID == "dev-worker" && (p.CPUSeconds != float64(n) || !strings.Contains(peerRow, `<td class="num">`+views.CPUTime(p.CPUSeconds)+`</td>`)) {
			t.Errorf("dev-worker's credit: %v CPU seconds in the API; its row:\n%s", p.CPUSeconds, peerRow)
		}
	}
	if r := tableRow(t, home.body, `<td class="mono">dev-server</td>`); !strings.Contains(r, "leader") || !strings.Contains(r, "<td>yes</td>") {
		t.Errorf("overview's Raft server row:\n%s", r)
	}

	// The jump form.
	if r := uiGet(t, g.Addr, "/ui/go?job="+id, cookie); r.code != http.StatusSeeOther || r.location != "/ui/jobs/"+id {
		t.Errorf("jump to job: %d %q", r.code, r.location)
	}
	if r := uiGet(t, g.Addr, "/ui/go?blob="+hash, cookie); r.code != http.StatusSeeOther || r.location != "/ui/blobs/"+hash {
		t.Errorf("jump to blob: %d %q", r.code, r.location)
	}

	// Job page: spec, counts, the first page of tasks.
	p1 := uiGet(t, g.Addr, "/ui/jobs/"+id, cookie)
	wantPage(t, "job page 1", p1, http.StatusOK, "&lt;b&gt;&#34;x&#34;", storage.Hash(mod), "k=4 m=2 (the cluster's)", "2s",
		fmt.Sprintf("%d done, 0 failed", n), "page 1 of 2", `id="task-0"`, `id="task-199"`, `href="?page=2"`)
	if strings.Contains(p1.body, `id="task-200"`) || strings.Count(p1.body, `<tr id="task-`) != 200 {
		t.Errorf("job page 1 has %d task rows, want 200 (0..199)", strings.Count(p1.body, `<tr id="task-`))
	}
	if r := tableRow(t, p1.body, `id="task-7"`); !strings.Contains(r, "done") || !strings.Contains(r, "dev-worker") || !strings.Contains(r, `<td class="num">0</td>`) {
		t.Errorf("task 7's row (done, on dev-worker, exit 0):\n%s", r)
	}
	p2 := uiGet(t, g.Addr, "/ui/jobs/"+id+"?page=2", cookie)
	wantPage(t, "job page 2", p2, http.StatusOK, "page 2 of 2", `id="task-200"`, `id="task-249"`, `href="?page=1"`)
	if strings.Contains(p2.body, `id="task-199"`) || strings.Count(p2.body, `<tr id="task-`) != n-200 {
		t.Errorf("job page 2 has %d task rows, want %d (200..249)", strings.Count(p2.body, `<tr id="task-`), n-200)
	}
	wantPage(t, "job page past the end", uiGet(t, g.Addr, "/ui/jobs/"+id+"?page=9", cookie), http.StatusOK, "page 2 of 2")
	wantPage(t, "job page=abc", uiGet(t, g.Addr, "/ui/jobs/"+id+"?page=abc", cookie), http.StatusNotFound, "not a page number")

	// Blob page: the coded blob's shards on six peers, all healthy.
	bp := uiGet(t, g.Addr, "/ui/blobs/"+hash, cookie)
	wantPage(t, "blob page", bp, http.StatusOK, "k=4 m=2", fmt.Sprintf("%d bytes", len(data)), "6 of 6 shards healthy", "all present")
	if got := strings.Count(bp.body, `<tr class="shard">`); got != 6 {
		t.Errorf("blob page: %d shard rows, want 6\n%s", got, bp.body)
	}
	peers := map[string]bool{}
	for _, sh := range m.Segments[0].Shards {
		r := tableRow(t, bp.body, `<td class="mono">`+sh.Peer+`</td>`)
		if !strings.Contains(r, `<span class="ok">yes</span>`) {
			t.Errorf("shard on %s not healthy:\n%s", sh.Peer, r)
		}
		peers[sh.Peer] = true
	}
	if len(peers) != 6 {
		t.Errorf("shards on %d distinct peers, want 6", len(peers))
	}
	// A shard whose peer stops is reported unhealthy, the blob still readable.
	g.Storage[0].Stop()
	bp = uiGet(t, g.Addr, "/ui/blobs/"+hash, cookie)
	wantPage(t, "blob page, a peer stopped", bp, http.StatusOK, "5 of 6 shards healthy", "degraded, still readable")
	// The module is inline.
	wantPage(t, "inline blob page", uiGet(t, g.Addr, "/ui/blobs/"+storage.Hash(mod), cookie), http.StatusOK, "inline in the ledger", "1 reference(s)")

	// Unknown job and blob: a clear 404 page.
	wantPage(t, "unknown job", uiGet(t, g.Addr, "/ui/jobs/j-000000000000", cookie), http.StatusNotFound, "Job not found", "j-000000000000")
	wantPage(t, "unknown blob", uiGet(t, g.Addr, "/ui/blobs/"+strings.Repeat("0", 64), cookie), http.StatusNotFound, "Blob not found")
	wantPage(t, "bad hash", uiGet(t, g.Addr, "/ui/blobs/%3Cscript%3E", cookie), http.StatusNotFound, "Blob not found", "&lt;script&gt;")
}

// TestDashboard_Follower: a follower renders from its own ledger and says
// it is a follower and who leads.
func TestDashboard_Follower(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	submitEcho(t, c.Client(c.Nodes...), 3)
	c.WaitConverged()
	testcluster.Eventually(t, 20*time.Second, "a follower's overview naming the leader and listing the job", func() bool {
		leader := c.Leader()
		f := c.Followers()
		if leader == nil || len(f) == 0 {
			return false
		}
		r := uiGet(t, f[0].HTTPAddr, "/ui/", nil, api.TokenHeader, testcluster.Token)
		return r.code == http.StatusOK && strings.Contains(r.body, "rendered by server <b class=\"mono\">"+f[0].ID+"</b> (follower; leader <span class=\"mono\">"+leader.ID+"</span>)") &&
			strings.Count(r.body, `<tr><td class="mono"><a href="/ui/jobs/`) == 1 && strings.Count(r.body, "<td>yes</td>") == 3
	})
	// A worker's load: from its heartbeats on the leader, which takes
	// them; from the leases in its ledger on a follower, which does not.
	startWorker(t, "w1", c.Client(c.Nodes...), 0)
	busyFrom := func(addr string) string {
		r := uiGet(t, addr, "/ui/live", nil, api.TokenHeader, testcluster.Token)
		if m := regexp.MustCompile(`"id":"w1",[^}]*"busy_from":"(\w+)"`).FindStringSubmatch(r.body); m != nil {
			return m[1]
		}
		return ""
	}
	testcluster.Eventually(t, 20*time.Second, "w1's load from heartbeats on the leader, from leases on a follower", func() bool {
		leader, f := c.Leader(), c.Followers()
		return leader != nil && len(f) > 0 && busyFrom(leader.HTTPAddr) == "heartbeat" && busyFrom(f[0].HTTPAddr) == "leases"
	})
}

// tableRow is the <tr> of body that contains marker.
func tableRow(t *testing.T, body, marker string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no %q on the page\n%s", marker, body)
	}
	start := strings.LastIndex(body[:i], "<tr")
	end := strings.Index(body[i:], "</tr>")
	if start < 0 || end < 0 {
		t.Fatalf("%q is not in a table row", marker)
	}
	return body[start : i+end]
}

// TestRoot_BrowserIsSentToTheDashboard: a browser opening the API's bare
// address (GET /, Accept: text/html) is redirected to /ui/; an API client
// there still gets the API's answer (401 without a credential).
func TestRoot_BrowserIsSentToTheDashboard(t *testing.T) {
	g := startServerGrid(t)
	req, _ := http.NewRequest(http.MethodGet, g.Addr+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if r := uiDo(t, noRedirects, req); r.code != http.StatusFound || r.location != "/ui/" {
		t.Fatalf("browser at /: %d to %q, want 302 to /ui/", r.code, r.location)
	}
	req, _ = http.NewRequest(http.MethodGet, g.Addr+"/", nil)
	req.Header.Set("Accept", "application/json")
	if r := uiDo(t, noRedirects, req); r.code != http.StatusUnauthorized {
		t.Fatalf("API client at /: %d, want 401", r.code)
	}
}
