package views

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// The dashboard's guards: a limit on sign-in attempts per client address
// (against guessing tokens) and CSRF checks on its two forms.

const (
	csrfCookie = "peergrid_csrf"
	loginBurst = 10              // attempts an address may make at once
	loginEvery = 6 * time.Second // then one more per this
)

// rateLimiter is a token bucket per key. Buckets that have refilled are
// forgotten, so the map stays as small as the set of recent guessers.
type rateLimiter struct {
	mu      sync.Mutex
	burst   float64
	every   time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(burst int, every time.Duration) *rateLimiter {
	return &rateLimiter{burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket at now, if it has one.
func (l *rateLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	if len(l.buckets) > 10000 {
		l.forgetFull(now)
	}
	return true
}

// forgetFull drops the buckets that have refilled (under l.mu).
func (l *rateLimiter) forgetFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.every) >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// clientAddr is the request's remote host, the key of its limit.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func newCSRFToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// csrfMatches: the login form's token equals its cookie's (double submit).
func csrfMatches(r *http.Request, form string) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && form != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) == 1
}

// sessionCSRF is the token a signed-in page's forms carry: derived from
// the session cookie, which another site can neither read nor send
// (HttpOnly, SameSite=Strict), so it cannot forge the form.
func sessionCSRF(r *http.Request) string {
	c, err := r.Cookie(uiCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	h := sha256.Sum256([]byte("peergrid dashboard csrf\x00" + c.Value))
	return hex.EncodeToString(h[:16])
}

// logoutCSRFMatches: the sign-out form carries its session's token.
func (d *Dashboard) logoutCSRFMatches(r *http.Request) bool {
	want := sessionCSRF(r)
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(r.PostForm.Get("csrf"))) == 1
}
