package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The cluster CA signs every server's and worker's certificate. A
// certificate names what it stands for in a URI SAN,
// spiffe://peergrid/<role>/<id>: role "server" or "worker". A worker's
// certificate can never stand for a server: the role is the CA's word.

// Certificate roles.
const (
	RoleServer = "server"
	RoleWorker = "worker"
)

// Lifetimes: the CA lives ten years; a server or worker certificate a year.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
)

// ErrIdentity is wrapped for a certificate that names no peergrid role.
var ErrIdentity = errors.New("certificate names no peergrid identity")

// CA is the cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a new cluster CA (ECDSA P-256).
func NewCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "peergrid cluster CA " + serial.Text(16)[:12]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caValidity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// Fingerprint is how clients pin the CA: "sha256:" and the hex SHA-256 of
// its public key (SubjectPublicKeyInfo), as kubeadm's CA cert hash.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is a certificate's public key fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// identityURI names role/id in a certificate.
func identityURI(role, id string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: "peergrid", Path: "/" + role + "/" + url.PathEscape(id)}
}

// Issue signs a certificate for pub standing for id in role, usable as a
// TLS server and client certificate.
func (ca *CA) Issue(pub crypto.PublicKey, role, id string, now time.Time) ([]byte, error) {
	if role != RoleServer && role != RoleWorker {
		return nil, fmt.Errorf("issue a certificate: role %q", role)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: role + " " + id},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{identityURI(role, id)},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
}

// SignCSR issues a certificate for the key of a certificate request (its
// signature checked; its subject and names ignored: the role and id are
// the grid's to give).
func (ca *CA) SignCSR(csrDER []byte, role, id string, now time.Time) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("certificate request: want an ECDSA key, got %T", csr.PublicKey)
	}
	return ca.Issue(csr.PublicKey, role, id, now)
}

// Identity is who a certificate stands for.
type Identity struct {
	Role, ID string
}

// IdentityOf reads the role and id a certificate stands for.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != "peergrid" {
			continue
		}
		role, id, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if id, err := url.PathUnescape(id); ok && err == nil && id != "" && (role == RoleServer || role == RoleWorker) {
			return Identity{Role: role, ID: id}, nil
		}
	}
	return Identity{}, fmt.Errorf("%w: %s", ErrIdentity, cert.Subject)
}

// NewKey makes a private key for a server or worker.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// CertificateRequest is a CSR for key (its subject is not trusted by the CA).
func CertificateRequest(key *ecdsa.PrivateKey, id string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
}

// Files of a data dir's TLS material (dir/tls/...), mode 0600.
const (
	caCertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"
	certFile   = "cert.pem"
	keyFile    = "key.pem"
)

// SaveCA keeps the CA (certificate and key) in dir.
func (ca *CA) Save(dir string) error {
	keyDER, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := writeSecret(dir, caKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	return writeSecret(dir, caCertFile, CertPEM(ca.Cert.Raw))
}

// LoadCA reads the CA kept in dir (os.ErrNotExist if there is none).
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCACert(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, err
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, caKeyFile), err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCACert reads the CA certificate kept in dir.
func LoadCACert(dir string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, err
	}
	return ParseCertPEM(b)
}

// CertPEM is a certificate in PEM.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertPEM reads the first certificate of a PEM text.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParseECPrivateKey(blk.Bytes)
}

func writeSecret(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

func parseDER(der []byte) (*x509.Certificate, error) { return x509.ParseCertificate(der) }
