package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A capability is an order a server of the grid signed for one storage
// peer: "peer P may take op on these shards until T". Storage peers have no
// ledger, so they obey shard writes and deletes (and reads by callers
// without a certificate of the grid) only on a capability.
//
// How it is signed: the server signs with the private key of its own TLS
// certificate (ECDSA P-256, issued by the cluster CA for role server), and
// the capability carries that certificate. A storage peer verifies the
// certificate against the cluster CA it already pins (the chain of its own
// certificate, or the CA the grid sent it over a pinned connection), checks
// that it names a server (a worker's certificate can never sign one), and
// checks the signature over the exact payload bytes it received: no
// re-encoding, so the payload's JSON needs no canonical form.
//
// The wire form is three base64url (unpadded) parts joined by dots:
// payload JSON, ASN.1 ECDSA signature over SHA-256(capabilityDomain ||
// payload), and the signer's certificate (DER).
//
// Replay: a capability is bound to one peer, one op and its shards (or, for
// an uploader's put, to the peer alone, the shard store's quota bounding
// what it can write), so replaying one does only what was allowed, and only
// until it expires. Clocks: the signer stamps the expiry from its own
// clock; the peer allows CapabilitySkew of difference.
type Capability struct {
	Op   string `json:"op"`   // CapPut, CapGet or CapDelete
	Peer string `json:"peer"` // the storage peer's id, as its certificate names it
	// Blob is the blob the shards belong to ("" for an upload whose hash
	// is not known before it streams); for logs and audit.
	Blob string `json:"blob,omitempty"`
	// Shards are the shard hashes the capability covers. Only a put may
	// leave it empty: an uploader's capability for a peer the server placed
	// a blob's shards on (the shard hashes are known only as it codes).
	Shards []string `json:"shards,omitempty"`
	// Holder is the credential it was issued to ("leader" for the leader's
	// own orders); for logs.
	Holder  string `json:"holder,omitempty"`
	Issued  int64  `json:"iat"` // Unix seconds, the signer's clock
	Expires int64  `json:"exp"` // Unix seconds, the signer's clock
}

// Capability ops.
const (
	CapPut    = "put"
	CapGet    = "get"
	CapDelete = "delete"
)

const (
	// CapabilitySkew is how far a peer's clock may be from the signer's.
	CapabilitySkew = time.Minute
	// MaxCapabilitySize bounds a capability on the wire (shard lists of
	// big blobs make a read or repair capability long).
	MaxCapabilitySize = 512 << 10
	// capabilityDomain separates these signatures from any other use of a
	// server's key.
	capabilityDomain = "peergrid capability v1\n"
)

var (
	// ErrCapability is wrapped when a capability is malformed, forged,
	// expired, or not for what it is used for.
	ErrCapability = errors.New("capability refused")
	// ErrNoCapability is wrapped when a request carries none.
	ErrNoCapability = errors.New("no capability")
)

// SignCapability signs c with cert's key; cert must be a server's
// certificate of the cluster CA with an ECDSA key.
func SignCapability(c Capability, cert *tls.Certificate) (string, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return "", errors.New("sign capability: this server holds no certificate of the cluster CA yet")
	}
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return "", errors.New("sign capability: the server's key is not ECDSA")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sig, err := key.Sign(rand.Reader, capabilityDigest(payload), crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign capability: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(sig) + "." + enc.EncodeToString(cert.Certificate[0]), nil
}

func capabilityDigest(payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(capabilityDomain))
	h.Write(payload)
	return h.Sum(nil)
}

// VerifyCapability checks that token was signed by a server certificate of
// ca and has not expired at now (give or take CapabilitySkew), and returns
// it with the signer's identity. What it allows is for Allows to say.
func VerifyCapability(token string, ca *x509.Certificate, now time.Time) (Capability, Identity, error) {
	var c Capability
	if ca == nil {
		return c, Identity{}, fmt.Errorf("%w: this peer knows no cluster CA to check it against", ErrCapability)
	}
	if len(token) > MaxCapabilitySize {
		return c, Identity{}, fmt.Errorf("%w: %d bytes, over %d", ErrCapability, len(token), MaxCapabilitySize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, Identity{}, fmt.Errorf("%w: malformed (want payload.signature.certificate)", ErrCapability)
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return c, Identity{}, fmt.Errorf("%w: malformed: %v", ErrCapability, err)
		}
		raw[i] = b
	}
	id, pub, err := capabilitySigner(raw[2], ca)
	if err != nil {
		return c, Identity{}, err
	}
	if !ecdsa.VerifyASN1(pub, capabilityDigest(raw[0]), raw[1]) {
		return c, Identity{}, fmt.Errorf("%w: bad signature", ErrCapability)
	}
	dec := json.NewDecoder(bytes.NewReader(raw[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, Identity{}, fmt.Errorf("%w: payload: %v", ErrCapability, err)
	}
	if exp := time.Unix(c.Expires, 0); now.After(exp.Add(CapabilitySkew)) {
		return c, id, fmt.Errorf("%w: expired at %s (signed by %s)", ErrCapability, exp.UTC().Format(time.RFC3339), id.ID)
	}
	return c, id, nil
}

// PeekCapability decodes a capability's payload without verifying it: for
// a holder to see which shards a capability it was given covers, never for
// deciding anything.
func PeekCapability(token string) (Capability, error) {
	var c Capability
	payload, _, ok := strings.Cut(token, ".")
	if !ok {
		return c, fmt.Errorf("%w: malformed", ErrCapability)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return c, fmt.Errorf("%w: malformed: %v", ErrCapability, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrCapability, err)
	}
	return c, nil
}

// capabilitySigner checks the signer's certificate: issued by ca, for a
// server, with an ECDSA key.
func capabilitySigner(der []byte, ca *x509.Certificate) (Identity, *ecdsa.PublicKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("%w: signer's certificate: %v", ErrCapability, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, nil, fmt.Errorf("%w: signer's certificate: %w: %v", ErrCapability, ErrWrongCA, err)
	}
	id, err := IdentityOf(cert)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("%w: signer: %v", ErrCapability, err)
	}
	if id.Role != RoleServer {
		return id, nil, fmt.Errorf("%w: signed by a %s's certificate (%s); only servers sign capabilities", ErrCapability, id.Role, id.ID)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return id, nil, fmt.Errorf("%w: signer's key is not ECDSA", ErrCapability)
	}
	return id, pub, nil
}

// Allows says whether c lets peer take op on shard.
func (c Capability) Allows(op, peer, shard string) error {
	switch {
	case c.Op != op:
		return fmt.Errorf("%w: it allows %s, not %s", ErrCapability, c.Op, op)
	case c.Peer != peer:
		return fmt.Errorf("%w: it is for peer %s, not this one (%s)", ErrCapability, c.Peer, peer)
	case len(c.Shards) == 0 && op == CapPut:
		return nil
	case !slices.Contains(c.Shards, shard):
		return fmt.Errorf("%w: it does not cover shard %s", ErrCapability, shard)
	}
	return nil
}
