package ledger

import (
	"errors"
	"fmt"
	"slices"

	"github.com/peergrid/peergrid/api"
)

// Credentials: who may do what. The ledger keeps each credential's role and
// the SHA-256 of its secret, never the secret: a token presented to any
// server is hashed and looked up here. Revocation and expiry are replicated
// state, so they reach every server as the log does.

// Credential rule violations.
var (
	ErrCredentialExists = errors.New("credential already exists")
	ErrNoCredential     = errors.New("no such credential")
	ErrJoinRefused      = errors.New("join refused")
	ErrWorkerIDTaken    = errors.New("worker id already held")
)

// Credential is one token's record.
type Credential struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Role    string `json:"role"`
	Hash    string `json:"hash"` // hex SHA-256 of the secret
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"` // unix ns; 0: never
	// Uses is how many more workers a join token admits (-1: unlimited).
	Uses int `json:"uses,omitempty"`
	// Peer is the worker id a peer credential speaks for.
	Peer string `json:"peer,omitempty"`
	// MaxCores caps the cores a worker (joined with this credential, or
	// holding it) may claim; 0: no cap.
	MaxCores int    `json:"max_cores,omitempty"`
	Revoked  int64  `json:"revoked,omitempty"`
	Issuer   string `json:"issuer,omitempty"` // the credential that created this one
	// CertBound: a peer credential whose worker was given a certificate of
	// the cluster CA when it joined; servers accept the credential only on
	// a connection that presents that certificate (mutual TLS).
	CertBound bool `json:"cert,omitempty"`
	// Quotas are what the credential may ask of the grid; nil (every
	// credential created before quotas) means its role's defaults
	// (api.DefaultQuotas). The leader sets them on every credential it
	// creates, so a later change of the defaults touches only old ones.
	Quotas *api.Quotas `json:"quotas,omitempty"`
}

// Limits are the credential's quotas: its own, or its role's defaults.
func (c *Credential) Limits() api.Quotas {
	if c.Quotas != nil {
		return *c.Quotas
	}
	return api.DefaultQuotas(c.Role)
}

// Valid reports whether the credential may be used at now (unix ns).
func (c *Credential) Valid(now int64) error {
	switch {
	case c.Revoked != 0:
		return fmt.Errorf("credential %s was revoked", c.ID)
	case c.Expires != 0 && now >= c.Expires:
		return fmt.Errorf("credential %s expired", c.ID)
	}
	return nil
}

// Info describes the credential without its hash.
func (c *Credential) Info() api.TokenInfo {
	info := api.TokenInfo{ID: c.ID, Name: c.Name, Role: c.Role, Created: unixTime(c.Created), Peer: c.Peer, MaxCores: c.MaxCores}
	if c.Expires != 0 {
		t := unixTime(c.Expires)
		info.Expires = &t
	}
	if c.Revoked != 0 {
		t := unixTime(c.Revoked)
		info.Revoked = &t
	}
	if c.Role == api.CredWorker && c.Uses >= 0 {
		n := c.Uses
		info.UsesLeft = &n
	}
	if c.Role != api.CredWorker { // a join token only joins
		q := c.Limits()
		info.Quotas = &q
	}
	return info
}

// CreateCredentialCommand adds a credential. The leader made its id and
// secret; only the secret's hash is in the command.
type CreateCredentialCommand struct {
	Credential Credential `json:"credential"`
	Now        int64      `json:"now"`
}

// RevokeCredentialCommand revokes a credential; revoking a peer credential
// also cuts its worker off (the server then marks it down).
type RevokeCredentialCommand struct {
	ID  string `json:"id"`
	Now int64  `json:"now"`
}

// JoinWorkerCommand spends one use of a join credential (or an operator's)
// to give a worker id its own peer credential.
type JoinWorkerCommand struct {
	Token string     `json:"token"` // the credential joining with
	Peer  Credential `json:"peer"`  // the new peer credential (role peer, Peer set)
	Now   int64      `json:"now"`
}

func (*CreateCredentialCommand) Type() CommandType { return cmdCreateCredential }
func (*RevokeCredentialCommand) Type() CommandType { return cmdRevokeCredential }
func (*JoinWorkerCommand) Type() CommandType       { return cmdJoinWorker }

var validRoles = []string{api.CredOperator, api.CredSubmitter, api.CredWorker, api.CredPeer}

func (l *Ledger) applyCreateCredential(c *CreateCredentialCommand) any {
	cr := c.Credential
	if !slices.Contains(validRoles, cr.Role) || cr.ID == "" || cr.Hash == "" {
		return fmt.Errorf("%w: credential %q with role %q", ErrBadCommand, cr.ID, cr.Role)
	}
	if _, ok := l.creds[cr.ID]; ok {
		return fmt.Errorf("%w: %s", ErrCredentialExists, cr.ID)
	}
	if _, ok := l.credByHash[cr.Hash]; ok {
		return fmt.Errorf("%w: a credential with that secret", ErrCredentialExists)
	}
	cr.Created = c.Now
	l.addCredential(&cr)
	return nil
}

func (l *Ledger) addCredential(cr *Credential) {
	l.credChanges++
	l.creds[cr.ID] = cr
	l.credByHash[cr.Hash] = cr.ID
	l.noteJoin(cr)
}

// noteJoin indexes the peer credential of a worker: the newest one
// (latest Created, then greatest id, whatever order they are added in)
// names the join credential the worker was admitted with.
func (l *Ledger) noteJoin(cr *Credential) {
	if cr.Role != api.CredPeer || cr.Peer == "" || cr.Issuer == "" {
		return
	}
	if old := l.creds[l.joinedBy[cr.Peer]]; old != nil && (old.Created > cr.Created || old.Created == cr.Created && old.ID > cr.ID) {
		return
	}
	l.joinedBy[cr.Peer] = cr.ID
}

func (l *Ledger) applyRevokeCredential(c *RevokeCredentialCommand) any {
	cr := l.creds[c.ID]
	if cr == nil {
		return fmt.Errorf("%w: %s", ErrNoCredential, c.ID)
	}
	if cr.Revoked == 0 {
		cr.Revoked = c.Now
		l.credChanges++
	}
	return nil
}

// applyJoinWorker admits a worker: the joining credential must be a live
// join token with uses left (or an operator's), and the worker id must not
// be a server's or held by another live peer credential.
func (l *Ledger) applyJoinWorker(c *JoinWorkerCommand) any {
	tok := l.creds[c.Token]
	if tok == nil || (tok.Role != api.CredWorker && tok.Role != api.CredOperator) {
		return fmt.Errorf("%w: credential %s cannot admit workers", ErrJoinRefused, c.Token)
	}
	if err := tok.Valid(c.Now); err != nil {
		return fmt.Errorf("%w: %v", ErrJoinRefused, err)
	}
	if tok.Role == api.CredWorker && tok.Uses == 0 {
		return fmt.Errorf("%w: join token %s has no uses left", ErrJoinRefused, tok.ID)
	}
	id := c.Peer.Peer
	if err := l.workerIDFree(id, c.Now, tok.Role == api.CredOperator); err != nil {
		return err
	}
	if c.Peer.Role != api.CredPeer || c.Peer.ID == "" || c.Peer.Hash == "" {
		return fmt.Errorf("%w: peer credential %+v", ErrBadCommand, c.Peer.Info())
	}
	if _, ok := l.creds[c.Peer.ID]; ok {
		return fmt.Errorf("%w: %s", ErrCredentialExists, c.Peer.ID)
	}
	if tok.Role == api.CredWorker && tok.Uses > 0 {
		tok.Uses--
		l.credChanges++
	}
	peer := c.Peer
	peer.Created, peer.Issuer, peer.MaxCores = c.Now, tok.ID, tok.MaxCores
	l.addCredential(&peer)
	return id
}

// workerIDFree refuses an id that is empty, a server's (unless an operator
// admits it: a server's own worker or storage peer), or held by a live peer
// credential.
func (l *Ledger) workerIDFree(id string, now int64, operator bool) error {
	if id == "" {
		return fmt.Errorf("%w: empty worker id", ErrBadCommand)
	}
	if p := l.peers[id]; p != nil && slices.Contains(p.Roles, api.RoleServer) && !operator {
		return fmt.Errorf("%w: %s is a server's id", ErrWorkerIDTaken, id)
	}
	for _, cr := range l.creds {
		if cr.Role == api.CredPeer && cr.Peer == id && cr.Valid(now) == nil {
			return fmt.Errorf("%w: %s (by credential %s)", ErrWorkerIDTaken, id, cr.ID)
		}
	}
	return nil
}

// CredentialByHash is the credential whose secret hashes to hash.
func (l *Ledger) CredentialByHash(hash string) (Credential, bool) {
	id, ok := l.credByHash[hash]
	if !ok {
		return Credential{}, false
	}
	return *l.creds[id], true
}

// Credential is a copy of one credential's record.
func (l *Ledger) Credential(id string) (Credential, bool) {
	cr := l.creds[id]
	if cr == nil {
		return Credential{}, false
	}
	return *cr, true
}

// Credentials lists every credential, sorted by id.
func (l *Ledger) Credentials() []Credential {
	out := make([]Credential, 0, len(l.creds))
	for _, id := range sortedKeys(l.creds) {
		out = append(out, *l.creds[id])
	}
	return out
}

// HasCredentials reports whether the ledger holds any credential (without
// copying and sorting them all, as Credentials does).
func (l *Ledger) HasCredentials() bool { return len(l.creds) > 0 }

// HasOperator reports whether any operator credential exists (a ledger
// from before credentials has none: its cluster token becomes one).
func (l *Ledger) HasOperator() bool {
	for _, cr := range l.creds {
		if cr.Role == api.CredOperator {
			return true
		}
	}
	return false
}

// PeerCredentialsOf lists the live peer credentials speaking for worker.
func (l *Ledger) PeerCredentialsOf(worker string, now int64) []string {
	var out []string
	for _, cr := range l.creds {
		if cr.Role == api.CredPeer && cr.Peer == worker && cr.Valid(now) == nil {
			out = append(out, cr.ID)
		}
	}
	slices.Sort(out)
	return out
}
