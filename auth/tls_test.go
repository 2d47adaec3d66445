package auth

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between a client and a server config over
// loopback and returns the client's and the server's errors.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		done <- tc.Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, client)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	cerr = tc.Handshake()
	if cerr == nil { // a TLS 1.3 client learns of a refused certificate on its first read
		if _, cerr = tc.Read(make([]byte, 1)); errors.Is(cerr, io.EOF) {
			cerr = nil // the server closed after a good handshake
		}
	}
	tc.Close()
	return cerr, <-done
}

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustKeypair(t *testing.T, ca *CA, role, id string) *tls.Certificate {
	t.Helper()
	kp, err := ca.IssueKeypair(role, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := kp.TLS(ca.Cert)
	return &c
}

func static(c *tls.Certificate) func() *tls.Certificate { return func() *tls.Certificate { return c } }

// TestTLS_ClientPinsTheCAByFingerprint: a client pinned by fingerprint
// accepts a server certificate the CA signed, and refuses, saying which, a
// wrong fingerprint, another grid's server, and a worker standing for a
// server.
func TestTLS_ClientPinsTheCAByFingerprint(t *testing.T) {
	ca, other := mustCA(t), mustCA(t)
	server := mustKeypair(t, ca, RoleServer, "s1")
	pin := StaticPin(Pin{Fingerprint: ca.Fingerprint()})
	serverCfg := ServerTLS(static(server), StaticPin(Pin{CA: ca.Cert}), false, nil)
	if cerr, serr := handshake(t, ClientTLS(pin, []string{RoleServer}, nil), serverCfg); cerr != nil || serr != nil {
		t.Fatalf("the right CA: client %v, server %v", cerr, serr)
	}
	for name, c := range map[string]struct {
		pin    func() Pin
		server *tls.Certificate
		want   string
	}{
		"wrong fingerprint":  {StaticPin(Pin{Fingerprint: other.Fingerprint()}), server, "does not hold CA"},
		"another grid":       {pin, mustKeypair(t, other, RoleServer, "s1"), "does not hold CA"},
		"a worker as server": {pin, mustKeypair(t, ca, RoleWorker, "w1"), "certificate is a worker's"},
		"a pinned other CA":  {StaticPin(Pin{CA: other.Cert}), server, "not signed by the pinned cluster CA"},
	} {
		cerr, _ := handshake(t, ClientTLS(c.pin, []string{RoleServer}, nil), ServerTLS(static(c.server), StaticPin(Pin{CA: ca.Cert}), false, nil))
		if cerr == nil || !strings.Contains(cerr.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, cerr, c.want)
		}
	}
}

// TestTLS_RaftRequiresAServerCertificateOfTheCA: a server requiring
// server certificates (Raft) refuses a client with none, a worker's, and
// another grid's, and accepts a server's.
func TestTLS_RaftRequiresAServerCertificateOfTheCA(t *testing.T) {
	ca, other := mustCA(t), mustCA(t)
	s1, s2 := mustKeypair(t, ca, RoleServer, "s1"), mustKeypair(t, ca, RoleServer, "s2")
	raftServer := ServerTLS(static(s1), StaticPin(Pin{CA: ca.Cert}), true, []string{RoleServer})
	client := func(cert *tls.Certificate) *tls.Config {
		if cert == nil {
			return ClientTLS(StaticPin(Pin{CA: ca.Cert}), []string{RoleServer}, nil)
		}
		return ClientTLS(StaticPin(Pin{CA: ca.Cert}), []string{RoleServer}, static(cert))
	}
	if cerr, serr := handshake(t, client(s2), raftServer); cerr != nil || serr != nil {
		t.Fatalf("server to server: client %v, server %v", cerr, serr)
	}
	for name, cert := range map[string]*tls.Certificate{
		"no certificate": nil, "a worker's": mustKeypair(t, ca, RoleWorker, "w1"), "another grid's": mustKeypair(t, other, RoleServer, "s9"),
	} {
		if _, serr := handshake(t, client(cert), raftServer); serr == nil {
			t.Errorf("Raft accepted a client with %s certificate", name)
		}
	}
}

// TestCA_SignCSRGivesTheGridsIdentityNotTheRequests: the role and id of a
// signed certificate are the CA's to give, whatever the request asked.
func TestCA_SignCSRGivesTheGridsIdentityNotTheRequests(t *testing.T) {
	ca := mustCA(t)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := CertificateRequest(key, "server s1 please")
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignCSR(csr, RoleWorker, "w7", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp := &Keypair{Key: key}
	if kp.Cert, err = parseDER(der); err != nil {
		t.Fatal(err)
	}
	if id, err := IdentityOf(kp.Cert); err != nil || id != (Identity{Role: RoleWorker, ID: "w7"}) {
		t.Fatalf("identity %+v, %v", id, err)
	}
	if _, err := ca.SignCSR([]byte("not a csr"), RoleWorker, "w8", time.Now()); err == nil {
		t.Fatal("a garbage request was signed")
	}
	if err := CheckFingerprint(ca.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if err := CheckFingerprint("sha256:xyz"); err == nil {
		t.Fatal("a bad fingerprint passed")
	}
}
