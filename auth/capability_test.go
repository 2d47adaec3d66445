package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCapability_SignedByAServerOfTheCAVerifiesAndNothingElseDoes: a
// capability a server certificate of the CA signed verifies until its
// expiry plus the skew; one signed by a worker's certificate, by another
// CA's server, altered after signing, or expired does not.
func TestCapability_SignedByAServerOfTheCAVerifiesAndNothingElseDoes(t *testing.T) {
	now := time.Now()
	ca, other := mustCA(t), mustCA(t)
	server, worker, foreign := mustTLS(t, ca, RoleServer, "s"), mustTLS(t, ca, RoleWorker, "w"), mustTLS(t, other, RoleServer, "s")
	c := Capability{Op: CapDelete, Peer: "p1", Shards: []string{"aa"}, Issued: now.Unix(), Expires: now.Add(time.Minute).Unix()}
	sign := func(kp *Keypair, owner *CA, c Capability) string {
		crt := kp.TLS(owner.Cert)
		tok, err := SignCapability(c, &crt)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(server, ca, c)
	got, id, err := VerifyCapability(good, ca.Cert, now)
	if err != nil || id.ID != "s" || got.Peer != "p1" || got.Allows(CapDelete, "p1", "aa") != nil {
		t.Fatalf("a server's capability: %+v by %v, %v", got, id, err)
	}
	if _, _, err := VerifyCapability(good, ca.Cert, now.Add(time.Minute+CapabilitySkew-time.Second)); err != nil {
		t.Fatalf("within the skew after its expiry: %v", err)
	}
	parts := strings.Split(good, ".")
	wider := c
	wider.Shards = []string{"aa", "bb"}
	parts[0] = strings.Split(sign(server, ca, wider), ".")[0]
	for name, tok := range map[string]string{
		"a worker's":       sign(worker, ca, c),
		"another grid's":   sign(foreign, other, c),
		"altered":          strings.Join(parts, "."),
		"truncated":        good[:len(good)-4],
		"not three parts":  "abc",
		"over the maximum": strings.Repeat("a", MaxCapabilitySize+1),
	} {
		if _, _, err := VerifyCapability(tok, ca.Cert, now); !errors.Is(err, ErrCapability) {
			t.Errorf("%s capability: %v, want ErrCapability", name, err)
		}
	}
	if _, _, err := VerifyCapability(good, ca.Cert, now.Add(time.Minute+CapabilitySkew+time.Second)); !errors.Is(err, ErrCapability) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("past its expiry and the skew: %v", err)
	}
	for _, c := range []struct{ op, peer, shard string }{{CapPut, "p1", "aa"}, {CapDelete, "p2", "aa"}, {CapDelete, "p1", "bb"}} {
		if err := got.Allows(c.op, c.peer, c.shard); err == nil {
			t.Errorf("a delete of aa on p1 allows %s of %s on %s", c.op, c.shard, c.peer)
		}
	}
	if err := (Capability{Op: CapPut, Peer: "p1"}).Allows(CapPut, "p1", "zz"); err != nil {
		t.Errorf("an open put capability: %v", err)
	}
	if err := (Capability{Op: CapGet, Peer: "p1"}).Allows(CapGet, "p1", "zz"); err == nil {
		t.Error("an open get capability allows a read")
	}
}

func mustTLS(t *testing.T, ca *CA, role, id string) *Keypair {
	t.Helper()
	kp, err := ca.IssueKeypair(role, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// BenchmarkVerifyCapability is what a storage peer spends on each shard
// write or delete to check its capability (chain and signature).
func BenchmarkVerifyCapability(b *testing.B) {
	ca, err := NewCA(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	kp, err := ca.IssueKeypair(RoleServer, "s", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	crt := kp.TLS(ca.Cert)
	now := time.Now()
	tok, err := SignCapability(Capability{Op: CapPut, Peer: "p1", Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()}, &crt)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := VerifyCapability(tok, ca.Cert, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
