package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/server"
)

const askQuiet = stream.FeaturesHeader + ": " + stream.FeatureQuietHeartbeats + "\r\n"

// staleRef is a task no worker holds: a heartbeat saying it runs it is
// told it is stale.
var staleRef = api.TaskRef{Job: "no-such-job", Index: 0, Attempt: 1}

// TestStream_QuietHeartbeatIsAnsweredOnlyWithNews: on a stream that asked
// for quiet heartbeats (and whose 101 says yes), quiet heartbeats with
// nothing new are served but not answered: the answer to the heartbeat
// after twenty of them is the next frame the client reads. A quiet
// heartbeat with news (a stale lease) is answered, and one a peer sends
// for another worker is refused with 403, as any heartbeat is.
func TestStream_QuietHeartbeatIsAnsweredOnlyWithNews(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	rs := mustOpenRaw(t, c, leader, testcluster.Token, nil, askQuiet)
	if rs.features != stream.FeatureQuietHeartbeats {
		t.Fatalf("the 101's %s: %q, want %q", stream.FeaturesHeader, rs.features, stream.FeatureQuietHeartbeats)
	}
	hb := api.HeartbeatRequest{Worker: "w1", Cores: 1}
	rs.send(t, stream.KindHeartbeat, 1, hb)
	if f := rs.recv(t); f.Kind != stream.KindAnswer || f.ID != 1 || len(f.Body) == 0 {
		t.Fatalf("first heartbeat's answer: %s %d %q, want it whole", f.Kind, f.ID, f.Body)
	}
	for id := uint32(2); id <= 21; id++ {
		rs.send(t, stream.KindQuietHeartbeat, id, hb)
	}
	rs.send(t, stream.KindHeartbeat, 22, hb)
	if f := rs.recv(t); f.Kind != stream.KindAnswer || f.ID != 22 || len(f.Body) != 0 {
		t.Fatalf("after 20 quiet heartbeats the client read %s %d %q, want the empty answer to heartbeat 22", f.Kind, f.ID, f.Body)
	}
	if n := server.QuietHeartbeatsUnanswered(leader.Server); n != 20 {
		t.Fatalf("%d quiet heartbeats left unanswered, want 20", n)
	}
	rs.send(t, stream.KindQuietHeartbeat, 23, api.HeartbeatRequest{Worker: "w1", Cores: 1, Running: []api.TaskRef{staleRef}})
	f := rs.recv(t)
	var resp api.HeartbeatResponse
	if f.Kind != stream.KindAnswer || f.ID != 23 || json.Unmarshal(f.Body, &resp) != nil || !slices.Contains(resp.Stale, staleRef) {
		t.Fatalf("a quiet heartbeat with a stale lease: %s %d %q, want an answer naming it stale", f.Kind, f.ID, f.Body)
	}

	secret, cert := streamWorker(t, c, "alpha")
	peer := mustOpenRaw(t, c, leader, secret, cert, askQuiet)
	peer.send(t, stream.KindQuietHeartbeat, 1, api.HeartbeatRequest{Worker: "beta", Cores: 1})
	if e := frameErr(t, peer.recv(t)); e.Code != http.StatusForbidden {
		t.Fatalf("a peer's quiet heartbeat for another worker: %+v, want 403", e)
	}
}

// TestStream_ClientHeartbeatsGoQuietAndGetNewsOnTheNextCall: once its
// stream gave the TTL, a client's heartbeats go quiet (the leader serves
// each and writes nothing), every call still returns the TTL; one that
// offers other cores waits for its answer; and news the leader sends for
// a quiet heartbeat (a stale lease) is returned by a following call.
func TestStream_ClientHeartbeatsGoQuietAndGetNewsOnTheNextCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	secret, cert := streamWorker(t, c, "alpha")
	cl := streamClient(c, secret, cert, leader)
	hb := api.HeartbeatRequest{Worker: "alpha", Cores: 1, Held: []api.TaskRef{}}
	first, err := cl.Heartbeat(ctx, &hb)
	if err != nil || first.TTL <= 0 {
		t.Fatalf("first heartbeat: %+v, %v; want the TTL", first, err)
	}
	for range 10 {
		resp, err := cl.Heartbeat(ctx, &hb)
		if err != nil || resp.TTL != first.TTL || resp.PauseKeep != first.PauseKeep {
			t.Fatalf("a quiet heartbeat: %+v, %v; want the first answer's TTL and pause keep %+v", resp, err, first)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "10 quiet heartbeats served unanswered", func() bool {
		return server.QuietHeartbeatsUnanswered(leader.Server) == 10 && server.StreamFrames(leader.Server) == 11
	})
	changed := hb
	changed.Cores = 2
	if _, err := cl.Heartbeat(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if n, q := server.StreamFrames(leader.Server), server.QuietHeartbeatsUnanswered(leader.Server); n != 12 || q != 10 {
		t.Fatalf("after a heartbeat offering other cores: %d frames, %d quiet; want 12 and 10 (it waited for its answer)", n, q)
	}
	stale := api.HeartbeatRequest{Worker: "alpha", Cores: 2, Running: []api.TaskRef{staleRef}, Held: []api.TaskRef{}}
	testcluster.Eventually(t, 10*time.Second, "a heartbeat returning the stale lease", func() bool {
		resp, err := cl.Heartbeat(ctx, &stale)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(resp.Stale, staleRef)
	})
	if _, ok := cl.WorkerStreamOpen(); !ok {
		t.Fatal("the stream closed")
	}
}

// TestStream_ServerWithoutQuietHeartbeatsGetsAnsweredOnes: a leader that
// does not list quiet heartbeats in its 101 (one from before them, here a
// proxy dropping the client's offer) gets only heartbeats it answers, and
// the stream stays open.
func TestStream_ServerWithoutQuietHeartbeatsGetsAnsweredOnes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	real := leader.Server.Handler()
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(stream.FeaturesHeader)
		real.ServeHTTP(w, r)
	}))
	defer old.Close()
	cl := client.New(old.URL, testcluster.Token)
	cl.WorkerStream = true
	for range 5 {
		if resp, err := cl.Heartbeat(ctx, &apiHeartbeat); err != nil || resp.TTL <= 0 {
			t.Fatalf("heartbeat: %+v, %v", resp, err)
		}
	}
	if n, q := server.StreamFrames(leader.Server), server.QuietHeartbeatsUnanswered(leader.Server); n != 5 || q != 0 {
		t.Fatalf("the leader served %d stream frames, %d quiet; want 5, none quiet", n, q)
	}
	if _, ok := cl.WorkerStreamOpen(); !ok {
		t.Fatal("the stream closed")
	}
}

// beatUntilClosed sends heartbeats of worker on rs, reading each answer,
// until the stream's closing frame (bounded by timeout).
func beatUntilClosed(t *testing.T, rs *rawStream, worker string, timeout time.Duration) stream.Error {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for id := uint32(100); time.Now().Before(deadline); id++ {
		rs.send(t, stream.KindHeartbeat, id, api.HeartbeatRequest{Worker: worker, Cores: 1})
		f := rs.recv(t)
		if f.Kind == stream.KindClosing {
			var e stream.Error
			if err := json.Unmarshal(f.Body, &e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		if f.Kind != stream.KindAnswer {
			t.Fatalf("heartbeat %d: a %s frame %q", id, f.Kind, f.Body)
		}
	}
	t.Fatalf("the stream was not ended within %s", timeout)
	return stream.Error{}
}

// keptChecks sends heartbeats on rs until the leader keeps a message's
// credential check from the one before (the ledger unchanged between
// them): the path a revocation or expiry must still end.
func keptChecks(t *testing.T, node *testcluster.Node, rs *rawStream, worker string) {
	t.Helper()
	before := server.StreamChecksKept(node.Server)
	for id := uint32(1); server.StreamChecksKept(node.Server) == before; id++ {
		if id > 50 {
			t.Fatal("50 heartbeats and no credential check was kept")
		}
		rs.send(t, stream.KindHeartbeat, id, api.HeartbeatRequest{Worker: worker, Cores: 1})
		if f := rs.recv(t); f.Kind != stream.KindAnswer {
			t.Fatalf("heartbeat %d: a %s frame %q", id, f.Kind, f.Body)
		}
	}
}

// TestStream_ExpiredCredentialEndsItThoughItsCheckWasKept: a stream whose
// credential check is being kept (the ledger did not change) still ends
// with 401 saying expired at its first message after the credential's
// expiry.
func TestStream_ExpiredCredentialEndsItThoughItsCheckWasKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	tok, err := c.Client(leader).CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredOperator, Name: "brief", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs := mustOpenRaw(t, c, leader, tok.Secret, nil, "")
	keptChecks(t, leader, rs, "w1")
	if e := beatUntilClosed(t, rs, "w1", 20*time.Second); e.Code != http.StatusUnauthorized || !strings.Contains(e.Error, "expired") {
		t.Fatalf("closing frame after the expiry: %+v, want 401 saying expired", e)
	}
}

// TestStream_RevocationEndsAStreamWhoseCheckWasKept: revoking the
// credential of a stream whose check is being kept ends the stream with
// 401 saying revoked at its next message.
func TestStream_RevocationEndsAStreamWhoseCheckWasKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	secret, cert := streamWorker(t, c, "alpha")
	rs := mustOpenRaw(t, c, leader, secret, cert, "")
	keptChecks(t, leader, rs, "alpha")
	if err := c.Client(leader).RevokePeer(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	rs.send(t, stream.KindHeartbeat, 1000, api.HeartbeatRequest{Worker: "alpha", Cores: 1})
	if e := rs.closingFrame(t); e.Code != http.StatusUnauthorized || !strings.Contains(e.Error, "revoked") {
		t.Fatalf("closing frame after the revocation: %+v, want 401 saying revoked", e)
	}
}

// TestStream_CheckIsKeptAcrossCommitsThatLeaveCredentialsAlone: a ledger
// change that touches no credential (another worker's first heartbeat
// commits it as a peer) does not make a stream check its credential
// again: at 10,000 workers the ledger commits hundreds of times a second,
// and a check per lease was a visible share of the leader's CPU.
func TestStream_CheckIsKeptAcrossCommitsThatLeaveCredentialsAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	tok, err := c.Client(leader).CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredOperator, Name: "long"})
	if err != nil {
		t.Fatal(err)
	}
	rs := mustOpenRaw(t, c, leader, tok.Secret, nil, "")
	keptChecks(t, leader, rs, "w1")
	fsm := leader.Server.Store().FSM()
	changes, credChanges := fsm.Changes(), fsm.CredentialChanges()
	if _, err := c.Client(leader).Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w2", Cores: 1}); err != nil {
		t.Fatal(err)
	}
	if fsm.Changes() == changes || fsm.CredentialChanges() != credChanges {
		t.Fatalf("w2's first heartbeat: ledger changes %d to %d, credential changes %d to %d; want the first to move and the second not",
			changes, fsm.Changes(), credChanges, fsm.CredentialChanges())
	}
	kept := server.StreamChecksKept(leader.Server)
	rs.send(t, stream.KindHeartbeat, 500, api.HeartbeatRequest{Worker: "w1", Cores: 1})
	if f := rs.recv(t); f.Kind != stream.KindAnswer {
		t.Fatalf("heartbeat after w2's commit: a %s frame %q", f.Kind, f.Body)
	}
	if got := server.StreamChecksKept(leader.Server) - kept; got != 1 {
		t.Fatalf("the heartbeat after a commit that touched no credential kept %d checks, want 1", got)
	}
}
