package views

import (
	"container/list"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The dashboard's guards: a limit on sign-in attempts per client address
// (against guessing tokens), and on every POST a check of its Origin and of
// the CSRF token its form carries.

const (
	csrfCookie = "peergrid_csrf"
	loginBurst = 10               // attempts an address may make at once
	loginEvery = 12 * time.Second // then one more per this: 5 a minute
	// maxLimited bounds the limiter's memory: past it the address heard
	// from least recently is forgotten (it gets a full bucket back, as any
	// new address would).
	maxLimited = 10000
)

// rateLimiter is a token bucket per key, the least recently used
// forgotten past max keys.
type rateLimiter struct {
	mu    sync.Mutex
	burst float64
	every time.Duration
	max   int
	keys  map[string]*list.Element // of *bucket
	lru   list.List                // front: used most recently
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

func newRateLimiter(burst int, every time.Duration, max int) *rateLimiter {
	return &rateLimiter{burst: float64(burst), every: every, max: max, keys: map[string]*list.Element{}}
}

// allow takes a token from key's bucket at now, if it has one; if not, it
// says how long until it will.
func (l *rateLimiter) allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration(math.Ceil((1 - b.tokens) * float64(l.every)))
	}
	b.tokens--
	return true, 0
}

// bucket is key's bucket, made full if new (under l.mu).
func (l *rateLimiter) bucket(key string, now time.Time) *bucket {
	if e, ok := l.keys[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	b := &bucket{key: key, tokens: l.burst, at: now}
	l.keys[key] = l.lru.PushFront(b)
	for len(l.keys) > l.max {
		last := l.lru.Back()
		l.lru.Remove(last)
		delete(l.keys, last.Value.(*bucket).key)
	}
	return b
}

func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// clientKey is whom a request's limit belongs to: its remote IPv4 address,
// or the /64 of an IPv6 one (one host commonly holds a whole /64, so
// per-address buckets would not slow it down).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func newCSRFToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// The reasons a POST is refused (403), shown to the person.
var (
	errCrossOrigin = errors.New("cross-origin")
	errCSRF        = errors.New("CSRF token")
)

// loginCSRF checks the login form's token against its cookie (a double
// submit: another site can neither read the cookie nor set it).
func loginCSRF(r *http.Request) error {
	form := r.PostForm.Get("csrf")
	c, err := r.Cookie(csrfCookie)
	switch {
	case form == "":
		return fmt.Errorf("%w: the form carried none", errCSRF)
	case err != nil:
		return fmt.Errorf("%w: no %s cookie came with the form (cookies blocked, or the form is from another site)", errCSRF, csrfCookie)
	case subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1:
		return fmt.Errorf("%w: the form's does not match its cookie (an old form, or one from another site)", errCSRF)
	}
	return nil
}

// sessionCSRF checks a signed-in form's token against its session's.
func sessionCSRF(r *http.Request, s *session) error {
	form := r.PostForm.Get("csrf")
	switch {
	case form == "":
		return fmt.Errorf("%w: the form carried none", errCSRF)
	case subtle.ConstantTimeCompare([]byte(s.csrf), []byte(form)) != 1:
		return fmt.Errorf("%w: the form's is not this session's (an old page, or a form from another site)", errCSRF)
	}
	return nil
}

// sameOrigin checks that a POST came from a page of this server: its
// Origin (which browsers send on every POST), or failing that its Referer,
// must be this server's own scheme and host. A request with neither is
// refused: it cannot be told from a forged one. The pages send a Referer
// only to their own origin (Referrer-Policy: same-origin), which also keeps
// Origin from being "null" on their forms.
func sameOrigin(r *http.Request) error {
	own := "http://" + r.Host
	if overTLS(r) {
		own = "https://" + r.Host
	}
	if o := r.Header.Get("Origin"); o != "" {
		if !strings.EqualFold(o, own) {
			return fmt.Errorf("%w: the form came from %q, not from this server (%s)", errCrossOrigin, o, own)
		}
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || !strings.EqualFold(u.Scheme+"://"+u.Host, own) {
			return fmt.Errorf("%w: the form came from a page at %q, not on this server (%s)", errCrossOrigin, ref, own)
		}
		return nil
	}
	return fmt.Errorf("%w: the request carried neither Origin nor Referer, so it cannot be told from a form on another site", errCrossOrigin)
}

// overTLS: the request came over TLS, here or at a proxy in front that says
// so. Trusting the header can only make the cookie stricter (Secure), never
// looser.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
