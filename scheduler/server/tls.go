package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/scheduler/store"
)

// TLS on every link. The cluster CA signs each server's certificate (role
// server) and each worker's (role worker). The API, Raft and the shard
// service run over TLS; clients pin the CA by its fingerprint.
//
// Where the CA's key lives: beside the ledger, in every server's data dir
// (<data-dir>/server/tls, mode 0600), not in the ledger. Raft itself runs
// over TLS with certificates the CA signed, so a server must hold one
// before it can replicate anything: the CA cannot come to it through the
// log. Every server holds the key, so whichever leads can certify a worker
// that joins. A server gets the CA once, when it is certified:
//   - the first server of a lone grid (BootstrapExpect 1) makes the CA;
//   - servers that form a group together (BootstrapExpect N) share the
//     token they were all given: the lowest id of the N makes the CA, and
//     the others accept it because the answer carries an HMAC of the CA
//     keyed with that token, then ask it to certify them (kubeadm's
//     discovery by bootstrap token);
//   - a server that joins a running grid pins the CA by fingerprint
//     (ServerConfig.CAPin) and is certified with an operator token.

// tlsState is this server's TLS identity: the CA (with its key) and its
// own certificate, or, before it is certified, a self-signed one that
// serves only the discovery exchange.
type tlsState struct {
	dir string
	mu  sync.RWMutex
	ca  *auth.CA
	own *tls.Certificate
	tmp *tls.Certificate // self-signed, until certified
}

func openTLS(dir string) (*tlsState, error) {
	t := &tlsState{dir: dir}
	ca, err := auth.LoadCA(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		tmp, err := selfSigned()
		if err != nil {
			return nil, err
		}
		t.tmp = tmp
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("cluster CA in %s: %w", dir, err)
	}
	kp, err := auth.LoadKeypair(dir)
	if err != nil {
		return nil, fmt.Errorf("server certificate in %s: %w", dir, err)
	}
	c := kp.TLS(ca.Cert)
	t.ca, t.own = ca, &c
	return t, nil
}

// certified reports whether this server holds a certificate of the CA.
func (t *tlsState) certified() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.own != nil
}

// install keeps the CA and this server's certificate and serves with them.
func (t *tlsState) install(ca *auth.CA, kp *auth.Keypair) error {
	if err := ca.Save(t.dir); err != nil {
		return err
	}
	if err := kp.Save(t.dir); err != nil {
		return err
	}
	c := kp.TLS(ca.Cert)
	t.mu.Lock()
	t.ca, t.own, t.tmp = ca, &c, nil
	t.mu.Unlock()
	return nil
}

// makeCA makes the cluster's CA and certifies this server with it.
func (t *tlsState) makeCA(id string) error {
	ca, err := auth.NewCA(time.Now())
	if err != nil {
		return err
	}
	kp, err := ca.IssueKeypair(auth.RoleServer, id, time.Now())
	if err != nil {
		return err
	}
	return t.install(ca, kp)
}

func (t *tlsState) cert() *tls.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.own != nil {
		return t.own
	}
	return t.tmp
}

// ownCert is this server's CA-signed certificate (nil until certified).
func (t *tlsState) ownCert() *tls.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.own
}

func (t *tlsState) authority() *auth.CA {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.ca
}

// pin trusts this server's CA (zero until certified).
func (t *tlsState) pin() auth.Pin {
	if ca := t.authority(); ca != nil {
		return auth.Pin{CA: ca.Cert}
	}
	return auth.Pin{}
}

// raftTLS: servers only, both ways.
func (t *tlsState) raftTLS() *store.RaftTLS {
	roles := []string{auth.RoleServer}
	return &store.RaftTLS{
		Server: auth.ServerTLS(t.ownCert, t.pin, true, roles),
		Client: auth.ClientTLS(t.pin, roles, t.ownCert),
	}
}

// APITLS is the TLS config to serve this server's API with.
func (s *Server) APITLS() *tls.Config {
	cfg := auth.ServerTLS(s.tls.cert, s.tls.pin, false, nil)
	cfg.ClientAuth = tls.RequestClientCert // a worker's; checked per request (clientcert.go)
	return cfg
}

// CA is the cluster CA's certificate (nil until this server is certified).
func (s *Server) CA() *x509.Certificate {
	if ca := s.tls.authority(); ca != nil {
		return ca.Cert
	}
	return nil
}

// selfSigned is a throwaway certificate for the discovery exchange: it
// proves nothing, and nothing is sent to it that needs a proof.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "peergrid server, not yet certified"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// caProof is the HMAC of the CA certificate keyed with the bootstrap token
// (its SHA-256, as the ledger would keep it): only a holder of that token
// can make it, so a server that holds it too can trust the CA it came with.
func caProof(token string, caDER []byte) string {
	key := sha256.Sum256([]byte(token))
	m := hmac.New(sha256.New, key[:])
	m.Write(caDER)
	return hex.EncodeToString(m.Sum(nil))
}

// discoverCA reads a CA from a server's self-description, accepted only if
// its proof matches this server's token.
func (s *Server) discoverCA(info api.ServerInfo) (*x509.Certificate, bool) {
	if info.CA == "" || s.cfg.Token == "" {
		return nil, false
	}
	cert, err := auth.ParseCertPEM([]byte(info.CA))
	if err != nil || !cert.IsCA {
		return nil, false
	}
	want := caProof(s.cfg.Token, cert.Raw)
	return cert, hmac.Equal([]byte(want), []byte(info.CAProof))
}

// certify gets this server a certificate of the CA pinned (from the
// server at addr, with the operator token it was given).
func (s *Server) certify(ctx context.Context, addr string, pin auth.Pin) error {
	key, err := auth.NewKey()
	if err != nil {
		return err
	}
	csr, err := auth.CertificateRequest(key, s.cfg.Store.ID)
	if err != nil {
		return err
	}
	c := s.pinnedClient(addr, pin)
	resp, err := c.Certify(ctx, &api.CertifyRequest{ID: s.cfg.Store.ID, CSR: csr})
	if err != nil {
		return fmt.Errorf("certify through %s: %w", addr, err)
	}
	ca, kp, err := parseCertified(resp, key)
	if err != nil {
		return fmt.Errorf("certify through %s: %w", addr, err)
	}
	if pin.CA != nil && !ca.Cert.Equal(pin.CA) || pin.Fingerprint != "" && ca.Fingerprint() != pin.Fingerprint {
		return fmt.Errorf("certify through %s: it sent another CA than the one pinned", addr)
	}
	s.log.Info("certified by the cluster CA", "ca_fingerprint", ca.Fingerprint())
	return s.tls.install(ca, kp)
}

func parseCertified(resp *api.CertifyResponse, key *ecdsa.PrivateKey) (*auth.CA, *auth.Keypair, error) {
	caCert, err := auth.ParseCertPEM([]byte(resp.CA))
	if err != nil {
		return nil, nil, fmt.Errorf("CA: %w", err)
	}
	blk, _ := pem.Decode([]byte(resp.CAKey))
	if blk == nil {
		return nil, nil, errors.New("no CA key")
	}
	caKey, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	cert, err := auth.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	return &auth.CA{Cert: caCert, Key: caKey}, &auth.Keypair{Cert: cert, Key: key}, nil
}

// handleCertify certifies a server (operator only; never forwarded: any
// certified server holds the CA). The answer carries the CA's key, so the
// new server can certify workers when it leads.
func (s *Server) handleCertify(w http.ResponseWriter, r *http.Request) {
	var req api.CertifyRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	ca := s.tls.authority()
	if ca == nil {
		writeErr(w, fmt.Errorf("%w: this server has no cluster CA yet: %w", store.ErrNoLeader, store.ErrNotProposed))
		return
	}
	if err := checkWorkerName(req.ID); err != nil || req.ID == "" {
		writeErr(w, fmt.Errorf("%w: server id %q", errBadRequest, req.ID))
		return
	}
	der, err := ca.SignCSR(req.CSR, auth.RoleServer, req.ID, time.Now())
	if err != nil {
		writeErr(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	keyDER, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.log.Info("server certified", "peer", req.ID, "by", principalOf(r).ID)
	writeJSON(w, http.StatusOK, api.CertifyResponse{Cert: string(auth.CertPEM(der)), CA: string(auth.CertPEM(ca.Cert.Raw)),
		CAKey: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))})
}

// tlsDir is where a server keeps its TLS material.
func tlsDir(cfg *ServerConfig) string { return filepath.Join(cfg.Store.DataDir, "tls") }
