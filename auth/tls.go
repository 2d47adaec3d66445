package auth

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TLS between peergrid's peers: every server and worker holds a key pair
// and a certificate the cluster CA signed; clients pin the CA (its
// certificate, or its fingerprint matched against the chain a server
// presents) and check that the certificate stands for the role they expect.
// Names in certificates are not checked: the CA's word on the role and id
// is what counts, so servers need no DNS names or IPs in their certificates.

// ErrWrongCA is wrapped when a peer's certificate does not chain to the
// pinned CA: a wrong fingerprint, or a peer of another grid.
var ErrWrongCA = errors.New("certificate not signed by the pinned cluster CA")

// Keypair is a server's or worker's key and certificate.
type Keypair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// TLS is the keypair as a TLS certificate presenting the chain [leaf, CA],
// so a client that pins the CA by fingerprint finds it.
func (k *Keypair) TLS(ca *x509.Certificate) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{k.Cert.Raw, ca.Raw}, PrivateKey: k.Key, Leaf: k.Cert}
}

// Save keeps the keypair in dir (cert.pem, key.pem; mode 0600).
func (k *Keypair) Save(dir string) error {
	der, err := x509.MarshalECPrivateKey(k.Key)
	if err != nil {
		return err
	}
	if err := writeSecret(dir, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	return writeSecret(dir, certFile, CertPEM(k.Cert.Raw))
}

// LoadKeypair reads the keypair kept in dir (os.ErrNotExist if none).
func LoadKeypair(dir string) (*Keypair, error) {
	cb, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertPEM(cb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, certFile), err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	key, err := parseKey(kb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, keyFile), err)
	}
	return &Keypair{Cert: cert, Key: key}, nil
}

// IssueKeypair makes a key and has ca certify it for role/id.
func (ca *CA) IssueKeypair(role, id string, now time.Time) (*Keypair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	der, err := ca.Issue(&key.PublicKey, role, id, now)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Keypair{Cert: cert, Key: key}, nil
}

// Pin is the CA a client trusts: its certificate, or its fingerprint
// ("sha256:<hex>", see Fingerprint) to find among the certificates a server
// presents.
type Pin struct {
	CA          *x509.Certificate
	Fingerprint string
}

// IsZero reports whether nothing is pinned.
func (p Pin) IsZero() bool { return p.CA == nil && p.Fingerprint == "" }

// CheckFingerprint refuses a fingerprint that is not "sha256:" and 64 hex
// digits, naming what was wrong.
func CheckFingerprint(fp string) error {
	hexPart, ok := strings.CutPrefix(fp, "sha256:")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return fmt.Errorf("CA fingerprint %q: want sha256: and 64 lowercase hex digits (peergrid dev and peergrid acl token create print it)", fp)
	}
	return nil
}

// PinOf is the pin a CA certificate file, else a fingerprint, gives.
func PinOf(caFile, fingerprint string) (Pin, error) {
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return Pin{}, fmt.Errorf("CA file: %w", err)
		}
		cert, err := ParseCertPEM(b)
		if err != nil {
			return Pin{}, fmt.Errorf("CA file %s: %w", caFile, err)
		}
		if fingerprint != "" && Fingerprint(cert) != fingerprint {
			return Pin{}, fmt.Errorf("CA file %s has fingerprint %s, not %s", caFile, Fingerprint(cert), fingerprint)
		}
		return Pin{CA: cert}, nil
	}
	if fingerprint == "" {
		return Pin{}, nil
	}
	return Pin{Fingerprint: fingerprint}, CheckFingerprint(fingerprint)
}

// verify checks a presented chain: the leaf chains to the pinned CA and
// stands for one of roles, and is fit for usage.
// Verify checks a server's certificate chain as ClientTLS does: signed by
// the pinned CA, for one of roles; it returns whom the certificate names.
func (p Pin) Verify(chain []*x509.Certificate, roles ...string) (Identity, error) {
	return p.verify(chain, x509.ExtKeyUsageServerAuth, roles)
}

// VerifyClient checks a client's certificate chain as ServerTLS does with
// require: signed by the pinned CA, for one of roles.
func (p Pin) VerifyClient(chain []*x509.Certificate, roles ...string) (Identity, error) {
	return p.verify(chain, x509.ExtKeyUsageClientAuth, roles)
}

func (p Pin) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, roles []string) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, errors.New("the peer presented no certificate")
	}
	ca := p.CA
	if ca == nil {
		for _, c := range chain[1:] {
			if c.IsCA && Fingerprint(c) == p.Fingerprint {
				ca = c
			}
		}
		if ca == nil {
			return Identity{}, fmt.Errorf("%w: the peer's chain does not hold CA %s (a wrong --ca-fingerprint, or a peer of another grid)", ErrWrongCA, p.Fingerprint)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return Identity{}, fmt.Errorf("%w: %v (a peer of another grid?)", ErrWrongCA, err)
	}
	id, err := IdentityOf(chain[0])
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(roles, id.Role) {
		return Identity{}, fmt.Errorf("%w: the peer's certificate is a %s's (%s), want %s", ErrIdentity, id.Role, id.ID, strings.Join(roles, " or "))
	}
	return id, nil
}

// ClientTLS is a client's TLS config: it accepts a server whose certificate
// the pinned CA signed for one of roles, and presents cert (if any) as its
// own. pin and cert are read at every handshake, so they may change (a
// server certified while it runs).
func ClientTLS(pin func() Pin, roles []string, cert func() *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, against the pin rather than a host name
		VerifyConnection: func(cs tls.ConnectionState) error {
			p := pin()
			if p.IsZero() {
				return errors.New("no cluster CA pinned yet")
			}
			_, err := p.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, roles)
			return err
		},
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := cert(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil // none yet: the server refuses us
		}
	}
	return cfg
}

// StaticPin is a pin that does not change.
func StaticPin(p Pin) func() Pin { return func() Pin { return p } }

// ServerTLS is a server's TLS config: it presents cert() (read on every
// handshake, so a certificate can change without a restart) and, with
// require, insists on a client certificate the pinned CA signed for one of
// roles.
func ServerTLS(cert func() *tls.Certificate, pin func() Pin, require bool, roles []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := cert(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate yet")
		},
	}
	if require {
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			p := pin()
			if p.IsZero() {
				return errors.New("no cluster CA yet")
			}
			_, err := p.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, roles)
			return err
		}
	}
	return cfg
}

// SaveCACert keeps the cluster CA's certificate (no key) in dir: a
// worker's, to present its chain.
func SaveCACert(dir string, cert *x509.Certificate) error {
	return writeSecret(dir, caCertFile, CertPEM(cert.Raw))
}

// LoadTLS reads a worker's key, certificate and the CA's certificate kept
// in dir, as the TLS certificate it serves with (os.ErrNotExist if none).
func LoadTLS(dir string) (*tls.Certificate, *x509.Certificate, error) {
	kp, err := LoadKeypair(dir)
	if err != nil {
		return nil, nil, err
	}
	ca, err := LoadCACert(dir)
	if err != nil {
		return nil, nil, err
	}
	c := kp.TLS(ca)
	return &c, ca, nil
}
