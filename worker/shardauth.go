package worker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
)

// shardAuth decides who may use this storage peer's shards. A storage
// peer has no ledger, so it asks the grid which credential a token is
// (POST /v1/auth/check) and remembers the answer for a few seconds, so a
// revoked credential is refused within shardAuthTTL. Any live credential of
// the grid may read a shard (shards are named by their content); a
// submitter may also write one (its client pushes the shards of the blobs
// it puts); only the servers (operator) and peers may delete.
//
// This is the interim rule: leader-signed capabilities per blob, so a
// submitter reads only its own blobs' shards, replace it (see the "nothing
// a peer says is taken on faith" issue).
type shardAuth struct {
	grid  gridAPI
	self  string // this peer's own secret, let through without asking
	mu    sync.Mutex
	cache map[[32]byte]authEntry
	now   func() time.Time
}

type authEntry struct {
	role string // "" for a token the grid refused
	err  string
	at   time.Time
}

const (
	shardAuthTTL     = 10 * time.Second
	shardAuthTimeout = 5 * time.Second
	shardAuthMax     = 4096 // cached answers, so bad tokens cannot grow the cache
)

var _ storage.Authorizer = (*shardAuth)(nil)

func newShardAuth(grid gridAPI, self string) *shardAuth {
	return &shardAuth{grid: grid, self: self, cache: map[[32]byte]authEntry{}, now: time.Now}
}

// Authorize implements storage.Authorizer.
func (a *shardAuth) Authorize(r *http.Request, token string) error {
	if token == "" {
		return fmt.Errorf("no credential in %s", storage.TokenHeader)
	}
	role, err := a.role(r.Context(), token)
	if err != nil {
		return err
	}
	switch {
	case r.Method == http.MethodDelete && role != api.CredOperator && role != api.CredPeer:
		return fmt.Errorf("%w: a %s credential may not delete shards", storage.ErrForbidden, role)
	case r.Method == http.MethodPut && role == api.CredWorker:
		return fmt.Errorf("%w: a join token may not store shards", storage.ErrForbidden)
	}
	return nil
}

// role is the role of token's credential, from the cache or the grid.
func (a *shardAuth) role(ctx context.Context, token string) (string, error) {
	if a.self != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.self)) == 1 {
		return api.CredPeer, nil
	}
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	e, ok := a.cache[key]
	a.mu.Unlock()
	if !ok || a.now().Sub(e.at) > shardAuthTTL {
		var definite bool
		e, definite = a.ask(ctx, token)
		if definite {
			a.remember(key, e)
		}
	}
	if e.role == "" {
		return "", fmt.Errorf("refused by the grid: %s", e.err)
	}
	return e.role, nil
}

// ask asks the grid; definite is false when the grid could not answer (the
// answer is then not remembered).
func (a *shardAuth) ask(ctx context.Context, token string) (e authEntry, definite bool) {
	ctx, cancel := context.WithTimeout(ctx, shardAuthTimeout)
	defer cancel()
	info, err := a.grid.CheckToken(ctx, token)
	if err != nil {
		return authEntry{err: err.Error(), at: a.now()}, errors.Is(err, client.ErrNotFound)
	}
	return authEntry{role: info.Role, at: a.now()}, true
}

func (a *shardAuth) remember(key [32]byte, e authEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= shardAuthMax {
		clear(a.cache)
	}
	a.cache[key] = e
}
