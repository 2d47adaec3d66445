package server

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"

	"github.com/peergrid/peergrid/auth"
)

// Client certificates. The API asks every client for a certificate of the
// cluster CA and requires none at the handshake: a user's CLI has none. A
// worker that joined with a CSR holds one, and its credential is bound to
// it (ledger.Credential.CertBound): its secret alone, stolen, opens
// nothing. A certificate that is presented must be the CA's (another
// grid's, or a forged one, is refused with 401 on every route), and a
// worker's must name the worker its credential speaks for.
//
// A follower that forwards a worker's request to the leader connects with
// its own server certificate and says in peerCertHeader which worker's
// certificate it verified; the leader believes that header only from a
// server certificate of the CA, and a follower never passes on the one a
// client sent.
const peerCertHeader = "X-Peergrid-Peer-Cert"

// certPeer is the worker id the request's client certificate names, as
// verified here or (from a server) by the follower that forwarded it; ""
// when it came with none.
func (s *Server) certPeer(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", nil
	}
	id, err := s.verifiedClients.verify(r.TLS.PeerCertificates, s.tls.pin())
	if err != nil {
		return "", fmt.Errorf("%w: client certificate: %v", ErrUnauthorized, err)
	}
	if id.Role == auth.RoleServer {
		return r.Header.Get(peerCertHeader), nil // forwarded by a server, which checked it
	}
	return id.ID, nil
}

// certMismatch is the error for a bound credential that came without its
// worker's certificate, or with another's.
func certMismatch(p *principal) error {
	if p.CertPeer == "" {
		return fmt.Errorf("%w: worker %s's credential is bound to its certificate: connect with it (mutual TLS; the agent keeps it in <data-dir>/worker/tls)", ErrUnauthorized, p.Peer)
	}
	return fmt.Errorf("%w: worker %s's credential came with worker %s's certificate", ErrUnauthorized, p.Peer, p.CertPeer)
}

// markForwarded sets, on a request a follower forwards, which worker's
// certificate it verified (none: the header is removed, whatever the
// client put there).
func markForwarded(out *http.Request, p *principal) {
	out.Header.Del(peerCertHeader)
	if p.CertPeer != "" {
		out.Header.Set(peerCertHeader, p.CertPeer)
	}
}

// certCache remembers the client certificates already verified, by the
// SHA-256 of the chain: a worker's every request carries its certificate,
// and an ECDSA verification per request would cost more than the request.
// Failures are not kept (the CA may not be known yet).
type certCache struct {
	mu  sync.Mutex
	ids map[[32]byte]auth.Identity
}

const maxCachedCerts = 1 << 14

func (c *certCache) verify(chain []*x509.Certificate, pin auth.Pin) (auth.Identity, error) {
	h := sha256.New()
	for _, cert := range chain {
		h.Write(cert.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	c.mu.Lock()
	id, ok := c.ids[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := pin.VerifyClient(chain, auth.RoleWorker, auth.RoleServer)
	if err != nil {
		return auth.Identity{}, err
	}
	c.mu.Lock()
	if c.ids == nil || len(c.ids) >= maxCachedCerts {
		c.ids = map[[32]byte]auth.Identity{} // rarely full: one entry per worker
	}
	c.ids[key] = id
	c.mu.Unlock()
	return id, nil
}
