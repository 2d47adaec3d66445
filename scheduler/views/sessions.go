package views

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// Dashboard sessions. Signing in exchanges a credential's token for a
// session: a random id (256 bits from crypto/rand, nothing derived from
// the token) that this server maps, in its memory, to the credential's id
// and role. The browser's cookie holds only that id; the token is checked
// once and kept nowhere. Every request re-checks that the credential is
// still live in the ledger, so revoking it ends its sessions on the next
// page; a session also ends after sessionIdle without a request, after
// sessionMaxAge in all, and at sign-out.
//
// Sessions live in the memory of the server that signed the browser in:
// they are not replicated (a person's browser talks to one address), so a
// session is not valid on another server, and a restart signs everyone out.
// Keeping them out of the ledger keeps the log free of per-browser churn
// and the session ids off the disk.

const (
	sessionCookie = "peergrid_session"
	sessionIdle   = time.Hour      // without a request (pages refresh every uiRefresh while open)
	sessionMaxAge = 12 * time.Hour // from sign-in, however busy
	// maxSessions bounds the store's memory; past it the least recently
	// used session is dropped. maxSessionsPerCredential stops one
	// credential from crowding out the others: its oldest goes first.
	maxSessions              = 10000
	maxSessionsPerCredential = 20
)

// session is one signed-in browser.
type session struct {
	id       string
	viewer   Viewer // whose credential; re-checked on every request
	csrf     string // the token its forms carry
	created  time.Time
	lastSeen time.Time
}

func (s *session) expired(now time.Time) bool {
	return now.Sub(s.created) >= sessionMaxAge || now.Sub(s.lastSeen) >= sessionIdle
}

// sessionStore is this server's sessions, by id. Times come from the
// caller, so tests can move the clock.
type sessionStore struct {
	mu            sync.Mutex
	byID          map[string]*session
	max           int // sessions in all
	perCredential int
}

func newSessionStore(max, perCredential int) *sessionStore {
	return &sessionStore{byID: map[string]*session{}, max: max, perCredential: perCredential}
}

// create starts a session for v at now, making room first.
func (st *sessionStore) create(v Viewer, now time.Time) *session {
	s := &session{id: newSessionID(), viewer: v, csrf: newCSRFToken(), created: now, lastSeen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.makeRoom(v.ID, now)
	st.byID[s.id] = s
	return s
}

// get is the live session id names, touched at now; an expired one is
// forgotten.
func (st *sessionStore) get(id string, now time.Time) (*session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[id]
	if !ok {
		return nil, false
	}
	if s.expired(now) {
		delete(st.byID, id)
		return nil, false
	}
	s.lastSeen = now
	return s, true
}

// drop ends a session (sign-out, or its credential is no longer live).
func (st *sessionStore) drop(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, id)
}

func (st *sessionStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byID)
}

// makeRoom (under st.mu) forgets expired sessions when the store is full,
// then drops the least recently used of credential's sessions past its
// share, and the least recently used of all past st.max. O(sessions),
// paid only on sign-in, which is rate-limited.
func (st *sessionStore) makeRoom(credential string, now time.Time) {
	var mine int
	var oldestMine, oldest *session
	for id, s := range st.byID {
		if s.expired(now) {
			delete(st.byID, id)
			continue
		}
		if s.viewer.ID == credential {
			mine++
			if oldestMine == nil || s.lastSeen.Before(oldestMine.lastSeen) {
				oldestMine = s
			}
		}
		if oldest == nil || s.lastSeen.Before(oldest.lastSeen) {
			oldest = s
		}
	}
	switch {
	case mine >= st.perCredential:
		delete(st.byID, oldestMine.id)
	case len(st.byID) >= st.max:
		delete(st.byID, oldest.id)
	}
}

// newSessionID is 256 random bits, URL-safe.
func newSessionID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
