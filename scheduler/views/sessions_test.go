package views

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/storage"
)

// fakeSource is a grid with one credential, t-1 (secret "secret"), that
// a test may revoke. It has no store: these tests stay on the login form,
// the sign-out and the redirects, which read none.
type fakeSource struct {
	mu      sync.Mutex
	revoked bool
}

func (f *fakeSource) Store() *store.Store                      { return nil }
func (f *fakeSource) Peers() []api.Peer                        { return nil }
func (f *fakeSource) RaftPeers(context.Context) []api.RaftPeer { return nil }
func (f *fakeSource) StorageDefaults() (int, int)              { return 4, 2 }
func (f *fakeSource) ShardPeer(string) storage.ShardPeer       { return nil }
func (f *fakeSource) Logger() *slog.Logger                     { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (f *fakeSource) Viewer(*http.Request) (Viewer, bool)      { return Viewer{}, false }
func (f *fakeSource) ReportedRunning(string) (int, bool)       { return 0, false }

func (f *fakeSource) ViewerOf(token string) (Viewer, bool) {
	if token != "secret" {
		return Viewer{}, false
	}
	return f.LiveCredential("t-1")
}

func (f *fakeSource) LiveCredential(id string) (Viewer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Viewer{ID: id, Role: api.CredOperator}, id == "t-1" && !f.revoked
}

func (f *fakeSource) setRevoked(r bool) {
	f.mu.Lock()
	f.revoked = r
	f.mu.Unlock()
}

// clock is a time a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type dashTest struct {
	t     *testing.T
	src   *fakeSource
	clock *clock
	srv   *httptest.Server
	hc    *http.Client
}

func newDashTest(t *testing.T) *dashTest {
	src := &fakeSource{}
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d := NewDashboard(src)
	d.now = c.now
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &dashTest{t: t, src: src, clock: c, srv: srv, hc: hc}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// do sends a request as a browser on the dashboard's own page would (with
// its Origin on a POST).
func (dt *dashTest) do(method, path string, form url.Values, cookies ...*http.Cookie) *http.Response {
	dt.t.Helper()
	req, err := http.NewRequest(method, dt.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		dt.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", dt.srv.URL)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := dt.hc.Do(req)
	if err != nil {
		dt.t.Fatal(err)
	}
	return resp
}

// signIn loads the login form and posts the secret; it returns the
// session cookie.
func (dt *dashTest) signIn() *http.Cookie {
	dt.t.Helper()
	form := dt.do(http.MethodGet, "/ui/login", nil)
	body, _ := io.ReadAll(form.Body)
	form.Body.Close()
	m := csrfInput.FindSubmatch(body)
	if m == nil {
		dt.t.Fatalf("no CSRF field on the login form:\n%s", body)
	}
	resp := dt.do(http.MethodPost, "/ui/login", url.Values{"token": {"secret"}, "csrf": {string(m[1])}}, cookieNamed(form, csrfCookie))
	resp.Body.Close()
	c := cookieNamed(resp, sessionCookie)
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		dt.t.Fatalf("sign in: %d, session cookie %v", resp.StatusCode, c)
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}
}

// signedIn: GET /ui/login sends a signed-in browser on to /ui/ and shows
// anyone else the form.
func (dt *dashTest) signedIn(c *http.Cookie) bool {
	dt.t.Helper()
	resp := dt.do(http.MethodGet, "/ui/login", nil, c)
	resp.Body.Close()
	return resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/ui/"
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestSession_ExpiresWhenIdle: a session used within the idle limit lives
// on; one left alone for it is refused.
func TestSession_ExpiresWhenIdle(t *testing.T) {
	dt := newDashTest(t)
	c := dt.signIn()
	for range 3 {
		dt.clock.add(sessionIdle - time.Minute)
		if !dt.signedIn(c) {
			t.Fatal("a session used within the idle limit was refused")
		}
	}
	dt.clock.add(sessionIdle)
	if dt.signedIn(c) {
		t.Fatalf("a session idle for %s still works", sessionIdle)
	}
	if n := dt.sessions(); n != 0 {
		t.Fatalf("%d sessions kept after the only one expired", n)
	}
}

// TestSession_ExpiresAtMaxAge: however busy, a session ends sessionMaxAge
// after sign-in.
func TestSession_ExpiresAtMaxAge(t *testing.T) {
	dt := newDashTest(t)
	c := dt.signIn()
	step := sessionIdle / 2
	for elapsed := step; elapsed < sessionMaxAge; elapsed += step {
		dt.clock.add(step)
		if !dt.signedIn(c) {
			t.Fatalf("a busy session was refused %s after sign-in", elapsed)
		}
	}
	dt.clock.add(step)
	if dt.signedIn(c) {
		t.Fatalf("a session still works %s after sign-in", sessionMaxAge)
	}
}

// TestSession_EndsWhenCredentialRevoked: the credential is checked on
// every request, and the session is forgotten once it is not live.
func TestSession_EndsWhenCredentialRevoked(t *testing.T) {
	dt := newDashTest(t)
	c := dt.signIn()
	if !dt.signedIn(c) {
		t.Fatal("a fresh session was refused")
	}
	dt.src.setRevoked(true)
	if dt.signedIn(c) {
		t.Fatal("a revoked credential's session still works")
	}
	dt.src.setRevoked(false)
	if dt.signedIn(c) {
		t.Fatal("a session ended by revocation came back")
	}
}

func (dt *dashTest) sessions() int { return dt.srv.Config.Handler.(*Dashboard).sessions.len() }

// TestSession_PerCredentialCap: one credential signing in again and again
// keeps at most its share of sessions, dropping its least recently used.
func TestSession_PerCredentialCap(t *testing.T) {
	st := newSessionStore(100, 3)
	now := time.Now()
	v := Viewer{ID: "t-1", Role: api.CredOperator}
	first := st.create(v, now)
	for i := range 5 {
		st.create(v, now.Add(time.Duration(i+1)*time.Second))
	}
	st.create(Viewer{ID: "t-2", Role: api.CredSubmitter}, now)
	if n := st.len(); n != 4 {
		t.Fatalf("%d sessions, want t-1's 3 and t-2's 1", n)
	}
	if _, ok := st.get(first.id, now.Add(time.Minute)); ok {
		t.Fatal("t-1's oldest session survived its cap")
	}
	for i := range 200 {
		st.create(Viewer{ID: "many", Role: api.CredSubmitter}, now.Add(time.Duration(i)*time.Millisecond))
		st.create(Viewer{ID: string(rune('a' + i%26)), Role: api.CredSubmitter}, now)
	}
	if n := st.len(); n > 100 {
		t.Fatalf("%d sessions, more than the store's bound of 100", n)
	}
}

// TestRateLimiter_BoundedAndSaysWhen: a bucket refills at its rate, a
// refused caller is told how long to wait, and the limiter forgets the
// least recently heard addresses past its bound.
func TestRateLimiter_BoundedAndSaysWhen(t *testing.T) {
	l := newRateLimiter(2, 10*time.Second, 50)
	now := time.Now()
	for i := range 2 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("attempt %d of a burst of 2 refused", i+1)
		}
	}
	ok, wait := l.allow("a", now.Add(4*time.Second))
	if ok || wait != 6*time.Second {
		t.Fatalf("third attempt 4s later: ok %v, retry after %s; want refused, 6s", ok, wait)
	}
	if ok, _ := l.allow("a", now.Add(10*time.Second)); !ok {
		t.Fatal("refused after the bucket refilled one token")
	}
	for i := range 1000 {
		l.allow(strings.Repeat("x", i%7)+string(rune(i)), now)
	}
	if n := l.len(); n != 50 {
		t.Fatalf("the limiter holds %d addresses, want its bound 50", n)
	}
}

// TestClientKey_IPv6ByPrefix: every address of one IPv6 /64 shares a bucket.
func TestClientKey_IPv6ByPrefix(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:5555":              "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:1000": "2001:db8:1:2::/64",
	} {
		if got := clientKey(&http.Request{RemoteAddr: addr}); got != want {
			t.Errorf("clientKey(%s) = %q, want %q", addr, got, want)
		}
	}
}
