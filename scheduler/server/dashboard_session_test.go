package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
)

// startServerGrid starts a dev grid with a server and no worker, closed
// when the test ends.
func startServerGrid(t *testing.T) *devgrid.Grid {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// signedIn: the cookie opens the overview (not a redirect to the login form).
func signedIn(t *testing.T, base string, c *http.Cookie) bool {
	t.Helper()
	r := uiGet(t, base, "/ui/", c)
	if r.code != http.StatusOK && (r.code != http.StatusSeeOther || r.location != "/ui/login") {
		t.Fatalf("GET /ui/: %d %q, want 200 or 303 to /ui/login\n%s", r.code, r.location, r.body)
	}
	return r.code == http.StatusOK
}

// TestDashboard_SessionCookieIsNotTheToken: the cookie is a random session
// id, fresh on every sign-in, with nothing of the token in it.
func TestDashboard_SessionCookieIsNotTheToken(t *testing.T) {
	g := startServerGrid(t)
	a := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	b := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	for _, c := range []*http.Cookie{a, b} {
		raw, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil || len(raw) < 16 {
			t.Fatalf("session id %q: %d bytes (%v), want at least 128 random bits", c.Value, len(raw), err)
		}
		if strings.Contains(c.Value, g.Token) || strings.Contains(string(raw), g.Token) || c.Value == base64.RawURLEncoding.EncodeToString([]byte(g.Token)) {
			t.Fatalf("the session cookie %q carries the token", c.Value)
		}
	}
	if a.Value == b.Value {
		t.Fatal("two sign-ins with one token got the same session id")
	}
	if !signedIn(t, g.Addr, a) || !signedIn(t, g.Addr, b) {
		t.Fatal("a fresh session was refused")
	}
}

// TestDashboard_LogoutEndsTheSession: after sign-out the old cookie, sent
// again, opens nothing; another session of the same credential lives on.
func TestDashboard_LogoutEndsTheSession(t *testing.T) {
	g := startServerGrid(t)
	a := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	b := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	csrf, _ := uiForm(t, noRedirects, g.Addr, "/ui/", a)
	out := uiPost(t, noRedirects, g.Addr, "/ui/logout", url.Values{"csrf": {csrf}}, a)
	if out.code != http.StatusSeeOther || out.location != "/ui/login" {
		t.Fatalf("logout: %d %q\n%s", out.code, out.location, out.body)
	}
	if signedIn(t, g.Addr, a) {
		t.Fatal("the session cookie still works after sign-out")
	}
	if r := uiGet(t, g.Addr, "/ui/login", a); r.code != http.StatusOK {
		t.Fatalf("the login form with a signed-out cookie: %d, want the form", r.code)
	}
	if !signedIn(t, g.Addr, b) {
		t.Fatal("signing one browser out ended another session")
	}
	// Signing out again with the dead cookie only clears it.
	if r := uiPost(t, noRedirects, g.Addr, "/ui/logout", url.Values{"csrf": {csrf}}, a); r.code != http.StatusSeeOther {
		t.Fatalf("logout with an ended session: %d", r.code)
	}
}

// TestDashboard_PostsFromAnotherOriginRefused: a form posted from another
// site, or from a page whose origin the request does not say, is refused
// with 403 naming why, and changes nothing.
func TestDashboard_PostsFromAnotherOriginRefused(t *testing.T) {
	g := startServerGrid(t)
	c := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	csrf, _ := uiForm(t, noRedirects, g.Addr, "/ui/", c)
	for _, o := range []struct{ header, value string }{
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Origin", strings.Replace(g.Addr, "https://", "http://", 1)}, // same host, another scheme
		{"Referer", "https://evil.example/ui/"},
		{"", ""},
	} {
		r := uiPostFrom(t, noRedirects, g.Addr, "/ui/logout", url.Values{"csrf": {csrf}}, o.header, o.value, c)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "cross-origin") {
			t.Errorf("logout with %s %q: %d, want 403 naming cross-origin\n%s", o.header, o.value, r.code, r.body)
		}
		if !signedIn(t, g.Addr, c) {
			t.Fatalf("a refused cross-origin logout (%s %q) ended the session", o.header, o.value)
		}
		lc, lcookie := uiForm(t, noRedirects, g.Addr, "/ui/login", nil)
		r = uiPostFrom(t, noRedirects, g.Addr, "/ui/login", url.Values{"token": {g.Token}, "csrf": {lc}}, o.header, o.value, lcookie)
		if r.code != http.StatusForbidden || sessionCookie(r) != nil || !strings.Contains(r.body, "cross-origin") {
			t.Errorf("login with %s %q: %d, session %v, want 403 naming cross-origin and none", o.header, o.value, r.code, sessionCookie(r))
		}
	}
	// A Referer from the dashboard itself is enough (a browser that sends no Origin).
	lc, lcookie := uiForm(t, noRedirects, g.Addr, "/ui/login", nil)
	r := uiPostFrom(t, noRedirects, g.Addr, "/ui/login", url.Values{"token": {g.Token}, "csrf": {lc}}, "Referer", g.Addr+"/ui/login", lcookie)
	if r.code != http.StatusSeeOther || sessionCookie(r) == nil {
		t.Fatalf("login with the dashboard's own Referer: %d\n%s", r.code, r.body)
	}
	if csp := uiGet(t, g.Addr, "/ui/login", nil).header.Get("Referrer-Policy"); csp != "same-origin" {
		t.Errorf("Referrer-Policy %q: the pages' own forms need their origin sent", csp)
	}
}

// TestDashboard_SignOutChecksCSRF: a sign-out without its session's CSRF
// token, or with another session's, is refused and ends nothing.
func TestDashboard_SignOutChecksCSRF(t *testing.T) {
	g := startServerGrid(t)
	a := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	b := uiLogin(t, noRedirects, g.Addr, g.Token, true)
	csrfA, _ := uiForm(t, noRedirects, g.Addr, "/ui/", a)
	csrfB, _ := uiForm(t, noRedirects, g.Addr, "/ui/", b)
	if csrfA == csrfB {
		t.Fatal("two sessions share a CSRF token")
	}
	for _, bad := range []url.Values{{}, {"csrf": {csrfA + "0"}}, {"csrf": {csrfB}}} {
		r := uiPost(t, noRedirects, g.Addr, "/ui/logout", bad, a)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "CSRF token") {
			t.Errorf("logout with %v: %d, want 403 naming the CSRF token\n%s", bad, r.code, r.body)
		}
	}
	if !signedIn(t, g.Addr, a) || !signedIn(t, g.Addr, b) {
		t.Fatal("a refused sign-out ended a session")
	}
}

// TestDashboard_RevokedCredentialEndsItsSessions: a submitter signs in,
// an operator revokes its credential, and its session opens nothing more.
func TestDashboard_RevokedCredentialEndsItsSessions(t *testing.T) {
	g := startServerGrid(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	c := uiLogin(t, noRedirects, g.Addr, tok.Secret, true)
	if !signedIn(t, g.Addr, c) {
		t.Fatal("the submitter's fresh session was refused")
	}
	if _, err := g.Client().RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "the revoked credential's session refused", func() bool {
		return !signedIn(t, g.Addr, c)
	})
	if r := uiLoginPost(t, noRedirects, g.Addr, tok.Secret); r.code != http.StatusUnauthorized || sessionCookie(r) != nil {
		t.Fatalf("sign-in with the revoked token: %d, want 401 and no session", r.code)
	}
}

// retryAfter is a 429's Retry-After in seconds (0 if absent or not a number).
func retryAfter(r uiResp) int {
	n, _ := strconv.Atoi(r.header.Get("Retry-After"))
	return n
}
