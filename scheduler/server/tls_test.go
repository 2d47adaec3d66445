package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

func startTLSGrid(t *testing.T) (*devgrid.Grid, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: dir, NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, dir
}

// TestTLS_PlainHTTPIsRefusedSayingSo: the API speaks only TLS; a plain
// HTTP request, from curl or from the CLI given an http:// address, gets
// an answer that says so, and changes nothing.
func TestTLS_PlainHTTPIsRefusedSayingSo(t *testing.T) {
	g, _ := startTLSGrid(t)
	plainAddr := "http://" + strings.TrimPrefix(g.Addr, "https://")
	req, _ := http.NewRequest(http.MethodGet, plainAddr+"/v1/jobs", nil)
	req.Header.Set(api.TokenHeader, g.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
		t.Fatalf("plain HTTP: %d %q, want 400 saying the server speaks HTTPS", resp.StatusCode, body)
	}
	c := client.New(plainAddr, g.Token)
	c.Pin(auth.Pin{Fingerprint: g.CAFingerprint})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Jobs(ctx)
	t.Logf("the client over plain HTTP: %v", err)
	if err == nil || !strings.Contains(err.Error(), "HTTPS") {
		t.Fatalf("the client over plain HTTP: %v, want an error saying the server speaks HTTPS", err)
	}
}

// TestTLS_WrongCAIsRefusedSayingWhich: a client that pins another CA (a
// wrong fingerprint, or the CA of another grid) refuses the server before
// it sends its token, and says the CA is not the one pinned; the right pin
// works.
func TestTLS_WrongCAIsRefusedSayingWhich(t *testing.T) {
	g, _ := startTLSGrid(t)
	other, err := auth.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, pin := range map[string]auth.Pin{
		"wrong fingerprint": {Fingerprint: "sha256:" + strings.Repeat("ab", 32)},
		"another grid's CA": {CA: other.Cert},
	} {
		c := client.New(g.Addr, g.Token)
		c.Pin(pin)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Jobs(ctx)
		cancel()
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, auth.ErrWrongCA) || !strings.Contains(err.Error(), "CA") {
			t.Errorf("%s: %v, want %v", name, err, auth.ErrWrongCA)
		}
	}
	if _, err := g.Client().Jobs(context.Background()); err != nil {
		t.Fatalf("the right pin: %v", err)
	}
}

// TestRaft_RefusesAnyoneButTheCAsServers replays the attack of issue 12: a
// raw AppendEntries with a higher term, carrying a command that adds a
// peer, sent to the Raft port with hashicorp/raft's own transport. With no
// TLS, TLS and no certificate, a worker's certificate of the grid's CA or
// a server certificate of another CA, the connection is refused and the
// ledger and the term are unchanged. The control: the same request from a
// holder of a server certificate of the grid's CA (which only servers
// hold) does add the peer, so the refusals are the transport's doing.
func TestRaft_RefusesAnyoneButTheCAsServers(t *testing.T) {
	g, dir := startTLSGrid(t)
	ca, err := auth.LoadCA(filepath.Join(dir, "server", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *auth.CA, role string) *tls.Certificate {
		kp, err := ca.IssueKeypair(role, "intruder", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c := kp.TLS(ca.Cert)
		return &c
	}
	r := g.Server.Store().Raft()
	termBefore := r.Stats()["term"]
	for _, c := range []struct {
		name string
		dial func(addr string, timeout time.Duration) (net.Conn, error)
	}{
		{"no TLS", plainDial},
		{"TLS without a certificate", tlsDial(nil)},
		{"a worker's certificate of the grid's CA", tlsDial(issue(ca, auth.RoleWorker))},
		{"a server certificate of another CA", tlsDial(issue(other, auth.RoleServer))},
	} {
		if err := injectPeer(g, c.dial, "evil-"+strconv.Itoa(len(c.name))); err == nil {
			t.Errorf("%s: AppendEntries answered", c.name)
		}
	}
	if n := evilPeers(g); n != 0 {
		t.Fatalf("the ledger took %d injected peers", n)
	}
	if term := r.Stats()["term"]; term != termBefore {
		t.Fatalf("the term moved from %s to %s", termBefore, term)
	}
	// The control. The grid may append an entry of its own between the
	// test reading its last index and the injection arriving, and then the
	// entry is answered, not applied (its previous entry does not match):
	// that is Raft's log check, not the transport's refusal, so it is tried
	// again with the new last index.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := injectPeer(g, tlsDial(issue(ca, auth.RoleServer)), "evil-control")
		if err == nil {
			break
		}
		if !errors.Is(err, errNotApplied) || time.Now().After(deadline) {
			t.Fatalf("AppendEntries with a server certificate of the grid's CA: %v", err)
		}
	}
	for evilPeers(g) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the control's injected peer never reached the ledger: the test cannot tell a refusal from a failed attack")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func evilPeers(g *devgrid.Grid) int {
	n := 0
	g.Server.Store().FSM().View(func(l *ledger.Ledger) {
		for _, p := range l.Peers() {
			if strings.HasPrefix(p.ID, "evil-") {
				n++
			}
		}
	})
	return n
}

// errNotApplied: the server answered the AppendEntries and did not append
// its entry (its log did not match the one the request followed).
var errNotApplied = errors.New("AppendEntries answered, not applied")

// injectPeer sends one AppendEntries as a leader of a later term, whose
// entry adds peer id, and commits it.
func injectPeer(g *devgrid.Grid, dial func(string, time.Duration) (net.Conn, error), id string) error {
	data, err := ledger.Encode(&ledger.UpsertPeerCommand{ID: id, Roles: []string{api.RoleWorker}, State: api.PeerAlive, Cores: 100000})
	if err != nil {
		return err
	}
	r := g.Server.Store().Raft()
	term, _ := strconv.ParseUint(r.Stats()["term"], 10, 64)
	lastTerm, _ := strconv.ParseUint(r.Stats()["last_log_term"], 10, 64)
	last := r.LastIndex()
	layer := &dialOnly{dial: dial, closed: make(chan struct{})}
	trans := raft.NewNetworkTransport(layer, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
		Term:      term + 10, PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last + 1,
		Entries: []*raft.Log{{Index: last + 1, Term: term + 10, Type: raft.LogCommand, Data: data}},
	}
	var resp raft.AppendEntriesResponse
	if err := trans.AppendEntries("dev-server", raft.ServerAddress(g.RaftAddr), req, &resp); err != nil {
		return err
	}
	if !resp.Success {
		return errNotApplied
	}
	return nil
}

func plainDial(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// tlsDial connects over TLS, presenting cert (none if nil) and trusting
// any server: the intruder wants in, it does not care who answers.
func tlsDial(cert *tls.Certificate) func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		d := &net.Dialer{Timeout: timeout}
		return tls.DialWithDialer(d, "tcp", addr, cfg)
	}
}

// dialOnly is a raft.StreamLayer that only dials out.
type dialOnly struct {
	dial   func(string, time.Duration) (net.Conn, error)
	closed chan struct{}
}

func (d *dialOnly) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return d.dial(string(addr), timeout)
}
func (d *dialOnly) Accept() (net.Conn, error) { <-d.closed; return nil, net.ErrClosed }
func (d *dialOnly) Close() error              { close(d.closed); return nil }
func (d *dialOnly) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// TestTLS_StoragePeersServeShardsWithTheirOwnCertificate: a storage peer
// advertises an https address, presents a worker certificate of the grid's
// CA naming its own id, and refuses plain HTTP.
func TestTLS_StoragePeersServeShardsWithTheirOwnCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, StoragePeers: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	peers, err := g.Client().Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	for _, p := range peers {
		if p.ID == g.Storage[0].ID {
			addr = p.Address
		}
	}
	if !strings.HasPrefix(addr, "https://") {
		t.Fatalf("storage peer %s advertises %q, want https", g.Storage[0].ID, addr)
	}
	host := strings.TrimPrefix(addr, "https://")
	pin := auth.Pin{Fingerprint: g.CAFingerprint}
	var id auth.Identity
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) (err error) {
			id, err = pin.Verify(cs.PeerCertificates, auth.RoleWorker)
			return err
		}})
	if err != nil {
		t.Fatalf("TLS to the storage peer, pinned to the grid's CA: %v", err)
	}
	conn.Close()
	if id.Role != auth.RoleWorker || id.ID != g.Storage[0].ID {
		t.Fatalf("the storage peer's certificate says %+v, want worker %s", id, g.Storage[0].ID)
	}
	resp, err := http.Get("http://" + host + "/v1/shards/" + strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the shard service: %d, want 400", resp.StatusCode)
	}
}

// TestCluster_ServersFormingAGroupShareOneCA: three servers started
// together with one token end up with one CA (the lowest id makes it, the
// others take it on the token's proof), and a server added later is
// certified by the same CA.
func TestCluster_ServersFormingAGroupShareOneCA(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	c.AddServer()
	testcluster.Eventually(t, 20*time.Second, "every server holds a CA", func() bool {
		for _, n := range c.Nodes {
			if n.Server.CA() == nil {
				return false
			}
		}
		return true
	})
	want := auth.Fingerprint(c.Nodes[0].Server.CA())
	for _, n := range c.Nodes {
		if got := auth.Fingerprint(n.Server.CA()); got != want {
			t.Fatalf("%s holds CA %s, %s holds %s", n.ID, got, c.Nodes[0].ID, want)
		}
	}
	c.WaitConverged()
}

// TestUpgrade_GroupFromBeforeTLSMakesOneCA: servers whose data dirs hold a
// ledger but no CA (as the previous release left them) are restarted with
// --join naming each other: the lowest id makes a CA, the others take it,
// and the group goes on with its ledger.
func TestUpgrade_GroupFromBeforeTLSMakesOneCA(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	id := submitEcho(t, c.Client(c.Nodes...), 2)
	for _, n := range c.Nodes {
		c.Stop(n)
	}
	for _, n := range c.Nodes {
		if err := os.RemoveAll(filepath.Join(n.Dir, "tls")); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		c.RestartJoining(n)
	}
	c.WaitRegistered()
	want := auth.Fingerprint(c.Nodes[0].Server.CA())
	for _, n := range c.Nodes {
		if got := auth.Fingerprint(n.Server.CA()); got != want {
			t.Fatalf("%s holds CA %s, %s holds %s", n.ID, got, c.Nodes[0].ID, want)
		}
	}
	if st, err := c.Client(c.Nodes...).Job(context.Background(), id); err != nil || st.Tasks != 2 {
		t.Fatalf("job %s after the upgrade: %+v %v", id, st, err)
	}
}

// TestUpgrade_LoneServerFromBeforeTLSMakesItsCA: a lone server's data dir
// with a ledger and no CA starts with a new CA and its ledger.
func TestUpgrade_LoneServerFromBeforeTLSMakesItsCA(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: dir, NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	id := submitEcho(t, g.Client(), 1)
	g.Close()
	if err := os.RemoveAll(filepath.Join(dir, "server", "tls")); err != nil {
		t.Fatal(err)
	}
	g, err = devgrid.Start(ctx, devgrid.Config{DataDir: dir, NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if st, err := g.Client().Job(ctx, id); err != nil || st.Tasks != 1 {
		t.Fatalf("job %s after the upgrade: %+v %v", id, st, err)
	}
}

// joinWithCert joins worker name with a CSR, as the agent does, and
// returns its secret and its certificate.
func joinWithCert(t *testing.T, c *client.Client, name string) (string, *tls.Certificate) {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := auth.CertificateRequest(key, name)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.JoinWorker(context.Background(), &api.WorkerJoinRequest{Name: name, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := auth.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := auth.ParseCertPEM([]byte(resp.CA))
	if err != nil {
		t.Fatal(err)
	}
	tc := (&auth.Keypair{Cert: cert, Key: key}).TLS(ca)
	return resp.Secret, &tc
}

// TestPeers_CredentialIsBoundToItsCertificate: a worker that joined with a
// CSR is accepted only with its certificate: its secret alone, or with
// another worker's certificate, gets 401 saying so; with its own it works,
// also through a follower, which vouches for the certificate to the
// leader. A client cannot vouch for itself with the follower's header.
func TestPeers_CredentialIsBoundToItsCertificate(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	leader, follower := c.Leader(), c.Followers()[0]
	ctx := context.Background()
	op := c.Client(leader)
	tok, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker})
	if err != nil {
		t.Fatal(err)
	}
	joiner := client.New(leader.HTTPAddr, tok.Secret)
	joiner.Pin(c.Pin())
	alpha, alphaCert := joinWithCert(t, joiner, "alpha")
	_, betaCert := joinWithCert(t, joiner, "beta")

	as := func(node *testcluster.Node, secret string, cert *tls.Certificate) *client.Client {
		cl := client.New(node.HTTPAddr, secret)
		cl.Pin(c.Pin()) // default retries: a 401 is never retried, a lost leadership is
		if cert != nil {
			cl.Identify(cert)
		}
		return cl
	}
	beat := func(cl *client.Client) error {
		_, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "alpha", Cores: 1})
		return err
	}
	for _, node := range []*testcluster.Node{leader, follower} {
		if err := beat(as(node, alpha, nil)); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "bound to its certificate") {
			t.Errorf("alpha's secret alone, at %s: %v, want 401 saying it is bound", node.ID, err)
		}
		if err := beat(as(node, alpha, betaCert)); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "beta's certificate") {
			t.Errorf("alpha's secret with beta's certificate, at %s: %v, want 401", node.ID, err)
		}
		if err := beat(as(node, alpha, alphaCert)); err != nil {
			t.Errorf("alpha with its certificate, at %s: %v", node.ID, err)
		}
	}
	// The follower's header, sent by a client: ignored at the leader (no
	// server certificate), replaced at the follower.
	for _, node := range []*testcluster.Node{leader, follower} {
		hc := as(node, alpha, nil).HTTP
		req, _ := http.NewRequest(http.MethodPost, node.HTTPAddr+"/v1/heartbeat", strings.NewReader(`{"worker":"alpha","cores":1}`))
		req.Header.Set(api.TokenHeader, alpha)
		req.Header.Set("X-Peergrid-Peer-Cert", "alpha")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a client's own vouching header at %s: %d %s, want 401", node.ID, resp.StatusCode, body)
		}
	}
}
