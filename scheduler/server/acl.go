package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// Credentials and roles. Every request is authenticated by the secret it
// carries (X-Peergrid-Token, or Authorization: Bearer): hashed and looked
// up in this server's applied ledger, so a credential created or revoked
// reaches every server with the log. Each route says which roles may call
// it (routeTable); handlers then check what a role may touch: a submitter
// only its own jobs and blobs, a peer only its own worker id.

var (
	// ErrUnauthorized is the error for a missing, unknown, revoked or
	// expired credential (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden is the error for a credential whose role may not do
	// what it asked (403).
	ErrForbidden = errors.New("forbidden")
)

// principal is who a request speaks for.
type principal struct {
	ledger.Credential
	// CertPeer is the worker id of the client certificate the request
	// came with (verified here, or by the follower that forwarded it).
	CertPeer string
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalOf is the request's authenticated caller (an operator when
// authentication is disabled, in tests).
func principalOf(r *http.Request) *principal {
	if p, ok := r.Context().Value(principalKey{}).(*principal); ok {
		return p
	}
	return &principal{Credential: ledger.Credential{ID: "anonymous", Role: api.CredOperator}}
}

// hashSecret is how the ledger names a secret: hex SHA-256. Secrets are
// 256 random bits, so an unsalted hash is safe to keep.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// newSecret is a fresh credential secret and its public id.
func newSecret() (id, secret string) {
	var b [32]byte
	var i [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	if _, err := rand.Read(i[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "t-" + hex.EncodeToString(i[:]), "pgt_" + hex.EncodeToString(b[:])
}

// clusterCredentialID names the cluster token given to the servers (--token)
// once it is registered as an operator credential.
const clusterCredentialID = "t-cluster"

// resolve finds the credential a secret is. The cluster token the servers
// were started with is an operator credential: registered in the ledger by
// the first leader (so it can be revoked like any other), and honoured
// before that only while the ledger has no operator at all (a group being
// formed, or a ledger from before credentials).
func (s *Server) resolve(secret string) (*principal, error) {
	return s.resolveHashed(secret, hashSecret(secret))
}

// resolveHashed is resolve for a secret whose hash is known (a worker
// stream hashes its secret once, not with every message).
func (s *Server) resolveHashed(secret, hash string) (*principal, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no credential: send a token in the %s header (PEERGRID_TOKEN for the CLI)", ErrUnauthorized, api.TokenHeader)
	}
	var cr ledger.Credential
	var found, hasOperator bool
	s.store.FSM().View(func(l *ledger.Ledger) {
		cr, found = l.CredentialByHash(hash)
		hasOperator = found || l.HasOperator()
	})
	if !found && !hasOperator && s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.Token)) == 1 {
		return &principal{Credential: ledger.Credential{ID: clusterCredentialID, Role: api.CredOperator}}, nil
	}
	if !found {
		return nil, fmt.Errorf("%w: unknown credential (a wrong token, or one of another grid)", ErrUnauthorized)
	}
	if err := cr.Valid(time.Now().UnixNano()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	return &principal{Credential: cr}, nil
}

// authenticate resolves every request's credential before it can read or
// change anything, and refuses it with 401 if it has none.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		certPeer, err := s.certPeer(r)
		var p *principal
		if err == nil {
			secret := requestToken(r)
			p, err = s.authenticateSecret(secret, hashSecret(secret), certPeer)
		}
		if err != nil {
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		if p == nil { // authentication disabled (tests only)
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// authenticateSecret is who a secret (whose hash is given), sent with a connection whose client
// certificate names certPeer, speaks for: nil when authentication is
// disabled (tests only). A worker stream asks it again for every message,
// so a credential revoked or expired mid-stream ends it.
func (s *Server) authenticateSecret(secret, hash, certPeer string) (*principal, error) {
	if s.cfg.Token == "" && !s.credentialsInUse() {
		return nil, nil
	}
	p, err := s.resolveHashed(secret, hash)
	if err != nil {
		return nil, err
	}
	p.CertPeer = certPeer
	if p.CertBound && p.CertPeer != p.Peer {
		return nil, certMismatch(p)
	}
	return p, nil
}

// credentialsInUse reports whether the ledger has any credential.
func (s *Server) credentialsInUse() bool {
	var any bool
	s.store.FSM().View(func(l *ledger.Ledger) { any = l.HasCredentials() })
	return any
}

// allow lets the given roles through to h and refuses the others with 403.
func allow(roles []string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		if !slices.Contains(roles, p.Role) {
			writeError(w, http.StatusForbidden, fmt.Errorf("%w: a %s credential may not %s %s (allowed: %s)",
				ErrForbidden, p.Role, r.Method, r.URL.Path, strings.Join(roles, ", ")))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Role sets of the route table.
var (
	onlyOperator  = []string{api.CredOperator}
	operatorOrSub = []string{api.CredOperator, api.CredSubmitter}
	workers       = []string{api.CredOperator, api.CredPeer}
	anyUser       = []string{api.CredOperator, api.CredSubmitter, api.CredPeer}
	joiners       = []string{api.CredOperator, api.CredWorker}
	everyRole     = []string{api.CredOperator, api.CredSubmitter, api.CredWorker, api.CredPeer}
	// anyone may call a route with no credential: only a server's public
	// self-description, which servers forming a group read before they
	// trust each other's TLS.
	anyone         = []string{"anyone"}
	errNotYourself = errors.New("a peer speaks only for itself")
)

// speaksFor is the worker id a request acts as: a peer credential's own id
// (a request naming another is refused), or, for an operator, the id it
// names.
func speaksFor(r *http.Request, claimed string) (string, error) {
	return principalOf(r).speaksFor(claimed)
}

// speaksFor is speaksFor for a caller already known (a worker stream's).
func (p *principal) speaksFor(claimed string) (string, error) {
	if p.Role != api.CredPeer {
		if claimed == "" {
			return "", fmt.Errorf("%w: worker id is empty", errBadRequest)
		}
		return claimed, nil
	}
	if claimed != "" && claimed != p.Peer {
		return "", fmt.Errorf("%w: %w: credential %s is worker %s's, not %s's", ErrForbidden, errNotYourself, p.ID, p.Peer, claimed)
	}
	return p.Peer, nil
}

// capCores caps the cores a worker claims by what its credential allows.
func (p *principal) capCores(cores int) int {
	if p.MaxCores > 0 && cores > p.MaxCores {
		return p.MaxCores
	}
	return cores
}

// mayTouchJob refuses a submitter a job it did not submit (as not found,
// so it learns nothing of other users' jobs).
func (s *Server) mayTouchJob(r *http.Request, id string) error {
	p := principalOf(r)
	if p.Role == api.CredOperator {
		return nil
	}
	var owns bool
	s.store.FSM().View(func(l *ledger.Ledger) { owns = l.OwnsJob(p.ID, id) })
	if !owns {
		return fmt.Errorf("%w: %s", ledger.ErrJobNotFound, id)
	}
	return nil
}

// mayRead refuses a submitter a blob it neither put nor uses in a job.
func (s *Server) mayRead(r *http.Request, hash string) error {
	p := principalOf(r)
	if p.Role != api.CredSubmitter {
		return nil
	}
	var ok bool
	s.store.FSM().View(func(l *ledger.Ledger) { ok = l.MayRead(p.ID, hash) })
	if !ok {
		return fmt.Errorf("%w: no blob %s of yours", errNotFound, hash)
	}
	return nil
}

// errNotFound answers 404 for what a caller may not know exists.
var errNotFound = errors.New("not found")

// owner is the credential a submitted job or blob is recorded under.
func owner(r *http.Request) string { return principalOf(r).ID }

// maxTokenTTL and maxJoinUses bound what a token create may ask for.
const (
	maxTokenName = 128
	maxJoinUses  = 1 << 20
)

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateTokenRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkCreateToken(&req); err != nil {
		writeErr(w, err)
		return
	}
	quotas, err := quotasFor(&req)
	if err != nil {
		writeErr(w, err)
		return
	}
	id, secret := newSecret()
	now := time.Now()
	cr := ledger.Credential{ID: id, Name: req.Name, Role: req.Role, Hash: hashSecret(secret), MaxCores: req.MaxCores,
		Uses: -1, Issuer: principalOf(r).ID, Quotas: quotas}
	if req.Uses > 0 {
		cr.Uses = req.Uses
	}
	if req.TTL > 0 {
		cr.Expires = now.Add(req.TTL).UnixNano()
	}
	if _, err := s.commit(r, &ledger.CreateCredentialCommand{Credential: cr, Now: now.UnixNano()}); err != nil {
		writeErr(w, err)
		return
	}
	cr.Created = now.UnixNano()
	s.log.Info("credential created", "credential", id, "role", req.Role, "name", req.Name, "by", principalOf(r).ID)
	writeJSON(w, http.StatusCreated, api.CreateTokenResponse{TokenInfo: cr.Info(), Secret: secret})
}

func checkCreateToken(req *api.CreateTokenRequest) error {
	switch {
	case req.Role != api.CredOperator && req.Role != api.CredSubmitter && req.Role != api.CredWorker:
		return fmt.Errorf("%w: role %q: want operator, submitter or worker", errBadRequest, req.Role)
	case len(req.Name) > maxTokenName:
		return fmt.Errorf("%w: name is %d bytes, at most %d", errBadRequest, len(req.Name), maxTokenName)
	case req.TTL < 0 || req.Uses < 0 || req.Uses > maxJoinUses || req.MaxCores < 0:
		return fmt.Errorf("%w: ttl, uses and max_cores must be positive (uses at most %d)", errBadRequest, maxJoinUses)
	case (req.Uses > 0 || req.MaxCores > 0) && req.Role != api.CredWorker:
		return fmt.Errorf("%w: uses and max_cores are for worker (join) tokens", errBadRequest)
	}
	return nil
}

// quotasFor are the quotas a new credential gets: its role's defaults with
// what the operator set over them, written out in full on the credential
// so a later change of the defaults leaves it as created. A join token
// only joins: its workers get a peer's quotas.
func quotasFor(req *api.CreateTokenRequest) (*api.Quotas, error) {
	if req.Role == api.CredWorker {
		if !req.Quotas.IsZero() {
			return nil, fmt.Errorf("%w: quotas are for operator and submitter credentials, not join tokens", errBadRequest)
		}
		return nil, nil
	}
	q, err := api.DefaultQuotas(req.Role).Apply(&req.Quotas)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return &q, nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	out := []api.TokenInfo{}
	s.store.FSM().View(func(l *ledger.Ledger) {
		for _, cr := range l.Credentials() {
			info := cr.Info()
			if info.Quotas != nil {
				use := l.Usage(cr.ID)
				info.Usage = &use
			}
			out = append(out, info)
		}
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var cr ledger.Credential
	var found bool
	s.store.FSM().View(func(l *ledger.Ledger) { cr, found = l.Credential(id) })
	if !found {
		writeErr(w, fmt.Errorf("%w: %s", ledger.ErrNoCredential, id))
		return
	}
	if _, err := s.commit(r, &ledger.RevokeCredentialCommand{ID: id, Now: time.Now().UnixNano()}); err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("credential revoked", "credential", id, "role", cr.Role, "by", principalOf(r).ID)
	if cr.Role == api.CredPeer {
		s.cutOff(r.Context(), cr.Peer)
	}
	writeJSON(w, http.StatusOK, cr.Info())
}

// handleRevokePeer cuts a worker off: every live credential of its id is
// revoked, it is marked down, and its leases go back to the queue (its
// shards are rebuilt elsewhere once the repair grace passes).
func (s *Server) handleRevokePeer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := time.Now().UnixNano()
	var creds []string
	s.store.FSM().View(func(l *ledger.Ledger) { creds = l.PeerCredentialsOf(id, now) })
	for _, c := range creds {
		if _, err := s.commit(r, &ledger.RevokeCredentialCommand{ID: c, Now: now}); err != nil {
			writeErr(w, err)
			return
		}
	}
	s.cutOff(r.Context(), id)
	s.log.Info("peer revoked", "peer", id, "credentials", len(creds), "by", principalOf(r).ID)
	writeJSON(w, http.StatusOK, map[string]any{"peer": id, "revoked": creds})
}

// handleTrustPeer clears a distrusted worker: leased work again, its
// strikes forgotten, checked again as a new worker (ledger.TrustPeerCommand).
func (s *Server) handleTrustPeer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.commit(r, &ledger.TrustPeerCommand{ID: id, Now: time.Now().UnixNano()}); err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("peer trusted", "peer", id, "by", principalOf(r).ID)
	writeJSON(w, http.StatusOK, map[string]any{"peer": id, "trusted": true})
}

// cutOff marks a worker down and requeues its leases, as if it had gone
// silent.
func (s *Server) cutOff(ctx context.Context, worker string) {
	s.propose(ctx, &ledger.UpsertPeerCommand{ID: worker, State: api.PeerDown, Now: time.Now().UnixNano()})
	s.liveness.forget(worker)
	var leases []api.TaskRef
	s.store.FSM().View(func(l *ledger.Ledger) { leases = l.LeasesOf(worker) })
	if len(leases) > 0 {
		s.metrics.countExpired(s.propose(ctx, &ledger.ExpireLeasesCommand{Now: time.Now().UnixNano(), Reason: "worker " + worker + " revoked", Tasks: leases}))
	}
}

// maxWorkerName bounds a worker id.
const maxWorkerName = 64

// handleWorkerJoin exchanges a join token (or an operator's) for a worker's
// own credential: the worker asks for an id (or gets one), and from then
// on speaks only as that id.
func (s *Server) handleWorkerJoin(w http.ResponseWriter, r *http.Request) {
	var req api.WorkerJoinRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	name := req.Name
	if name == "" {
		_, secret := newSecret()
		name = "w-" + secret[4:14]
	}
	if err := checkWorkerName(name); err != nil {
		writeErr(w, err)
		return
	}
	// The certificate first: a request it refuses must not use up the id.
	out := api.WorkerJoinResponse{Worker: name}
	if ca := s.tls.authority(); len(req.CSR) > 0 && ca != nil {
		der, err := ca.SignCSR(req.CSR, auth.RoleWorker, name, time.Now())
		if err != nil {
			writeErr(w, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		out.Cert, out.CA = string(auth.CertPEM(der)), string(auth.CertPEM(ca.Cert.Raw))
	}
	id, secret := newSecret()
	out.Credential = id
	quotas := api.PeerQuotas
	peer := ledger.Credential{ID: id, Role: api.CredPeer, Hash: hashSecret(secret), Peer: name, CertBound: out.Cert != "", Quotas: &quotas}
	p := principalOf(r)
	if p.ID == clusterCredentialID { // the ledger must know it before it can admit anyone
		s.registerClusterToken(r.Context())
	}
	resp, err := s.commit(r, &ledger.JoinWorkerCommand{Token: p.ID, Peer: peer, Now: time.Now().UnixNano()})
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("worker joined", "peer", resp, "credential", id, "with", p.ID)
	out.Secret = secret
	writeJSON(w, http.StatusOK, out)
}

// checkWorkerName allows ids a person can read and a URL path can carry.
func checkWorkerName(name string) error {
	if len(name) > maxWorkerName {
		return fmt.Errorf("%w: worker id is %d bytes, at most %d", errBadRequest, len(name), maxWorkerName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: worker id %q: use letters, digits, '-', '_' and '.'", errBadRequest, name)
		}
	}
	return nil
}

// registerClusterToken makes the cluster token the servers were given an
// operator credential in the ledger, once: a new grid's first operator, or
// the migration of a grid from before credentials (whose one token did
// everything). Run by a new leader.
func (s *Server) registerClusterToken(ctx context.Context) {
	if s.cfg.Token == "" {
		return
	}
	var registered bool
	hash := hashSecret(s.cfg.Token)
	s.store.FSM().View(func(l *ledger.Ledger) {
		_, registered = l.CredentialByHash(hash)
		registered = registered || l.HasOperator()
	})
	if registered {
		return
	}
	_, err := s.store.Propose(ctx, &ledger.CreateCredentialCommand{Now: time.Now().UnixNano(), Credential: ledger.Credential{
		ID: clusterCredentialID, Name: "cluster token (given to the servers)", Role: api.CredOperator, Hash: hash, Uses: -1}})
	switch {
	case err == nil:
		s.log.Info("the cluster token is an operator credential", "credential", clusterCredentialID)
	case !errors.Is(err, ledger.ErrCredentialExists): // a concurrent registration won
		s.log.Warn("register the cluster token", "err", err)
	}
}

// RouteRoles is one route of the API and the roles that may call it.
type RouteRoles struct {
	Pattern string // "METHOD /path"
	Roles   []string
}

// RoleMatrix lists every API route with the roles that may call it: the
// matrix the README documents. Handlers narrow it further (a submitter's
// own jobs and blobs, a peer's own worker id).
func (s *Server) RoleMatrix() []RouteRoles {
	var out []RouteRoles
	for _, rt := range s.routes() {
		out = append(out, RouteRoles{Pattern: rt.pattern, Roles: rt.roles})
	}
	return out
}
