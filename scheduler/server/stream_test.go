package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/tasks"
)

// streamWorker joins a worker with its own certificate on cluster c and
// returns its secret and certificate.
func streamWorker(t *testing.T, c *testcluster.Cluster, name string) (string, *tls.Certificate) {
	t.Helper()
	tok, err := c.Client(c.Leader()).CreateToken(context.Background(), &api.CreateTokenRequest{Role: api.CredWorker})
	if err != nil {
		t.Fatal(err)
	}
	joiner := client.New(c.Leader().HTTPAddr, tok.Secret)
	joiner.Pin(c.Pin())
	return joinWithCert(t, joiner, name)
}

// streamClient is a worker's client of the given nodes that uses a
// worker stream.
func streamClient(c *testcluster.Cluster, secret string, cert *tls.Certificate, nodes ...*testcluster.Node) *client.Client {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.HTTPAddr)
	}
	cl := client.New(strings.Join(addrs, ","), secret)
	cl.Pin(c.Pin())
	if cert != nil {
		cl.Identify(cert)
	}
	cl.WorkerStream = true
	return cl
}

// TestStream_CarriesHeartbeatsLeasesAndReports: a worker whose client is
// given a follower first opens its stream on the leader (the follower
// refuses it), and its heartbeats, leases (with reports) and reports all
// travel on it: the leader counts each frame, and the job completes.
func TestStream_CarriesHeartbeatsLeasesAndReports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 3, testcluster.Options{})
	leader := c.Leader()
	secret, cert := streamWorker(t, c, "alpha")
	job := submitEcho(t, c.Client(leader), 3)
	cl := streamClient(c, secret, cert, c.Followers()[0], leader)

	hb, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "alpha", Cores: 2, Engines: []string{"wazero"}, Held: []api.TaskRef{}})
	if err != nil {
		t.Fatal(err)
	}
	if hb.TTL <= 0 {
		t.Fatalf("the stream's first heartbeat answer: %+v, want the TTL", hb)
	}
	if addr, ok := cl.WorkerStreamOpen(); !ok || addr != leader.HTTPAddr {
		t.Fatalf("stream open: %q %v, want on the leader %s", addr, ok, leader.HTTPAddr)
	}
	again, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "alpha", Cores: 2, Engines: []string{"wazero"}, Held: []api.TaskRef{}})
	if err != nil || again.TTL != hb.TTL || again.PauseKeep != hb.PauseKeep {
		t.Fatalf("an unchanged heartbeat's answer: %+v, %v; want the first one's TTL and pause keep %+v", again, err, hb)
	}
	got, err := cl.Lease(ctx, &api.LeaseRequest{Worker: "alpha", Cores: 2, Max: 2, Engines: []string{"wazero"}})
	if err != nil || len(got) != 2 {
		t.Fatalf("lease on the stream: %d tasks, %v; want 2", len(got), err)
	}
	resp, err := cl.LeaseWithReports(ctx, &api.LeaseRequest{Worker: "alpha", Cores: 2, Max: 2, Engines: []string{"wazero"},
		Reports: echoReports(got[:1])})
	if err != nil || len(resp.Accepted) != 1 || !resp.Accepted[0] || len(resp.Tasks) != 1 {
		t.Fatalf("lease carrying a report: %+v, %v; want it accepted and the last task", resp, err)
	}
	accepted, err := cl.Report(ctx, &api.ReportRequest{Worker: "alpha", Reports: echoReports(append(got[1:], resp.Tasks...))})
	if err != nil || len(accepted) != 2 || !accepted[0] || !accepted[1] {
		t.Fatalf("report on the stream: %v, %v", accepted, err)
	}
	if n := server.StreamFrames(leader.Server); n != 5 {
		t.Fatalf("the leader served %d stream frames, want 5 (2 heartbeats, 2 leases, 1 report)", n)
	}
	if sum, err := c.Client(leader).JobSummary(ctx, job); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job after the stream's reports: %+v, %v", sum, err)
	}
}

// echoReports reports each assignment done.
func echoReports(got []api.Assignment) []api.Report {
	reps := make([]api.Report, len(got))
	for i, a := range got {
		reps[i] = api.Report{TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt},
			Result: tasks.Result{Stdout: []byte("ok\n"), Duration: time.Millisecond, Engine: "wazero"}}
	}
	return reps
}

// rawStream is a worker stream spoken frame by frame.
type rawStream struct {
	conn     net.Conn
	in       *bufio.Reader
	features string // the 101's stream.FeaturesHeader
}

// openRaw asks node for a worker stream as secret (with cert, if any) and
// returns the stream, or the refusal's status and body.
func openRaw(t *testing.T, c *testcluster.Cluster, node *testcluster.Node, secret string, cert *tls.Certificate) (*rawStream, int, string) {
	t.Helper()
	return openRawWith(t, c, node, secret, cert, "")
}

// mustOpenRaw is openRawWith that fails the test if the stream is refused.
func mustOpenRaw(t *testing.T, c *testcluster.Cluster, node *testcluster.Node, secret string, cert *tls.Certificate, extra string) *rawStream {
	t.Helper()
	rs, code, body := openRawWith(t, c, node, secret, cert, extra)
	if rs == nil {
		t.Fatalf("open a worker stream on %s: %d %s", node.ID, code, body)
	}
	return rs
}

// openRawWith is openRaw with extra header lines in the upgrade request.
func openRawWith(t *testing.T, c *testcluster.Cluster, node *testcluster.Node, secret string, cert *tls.Certificate, extra string) (*rawStream, int, string) {
	t.Helper()
	cfg := auth.ClientTLS(auth.StaticPin(c.Pin()), []string{auth.RoleServer}, nil)
	cfg.NextProtos = []string{"http/1.1"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(node.HTTPAddr, "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return upgradeOn(t, conn, secret, extra)
}

// upgradeOn asks for a worker stream on conn with secret and extra header
// lines: the stream, or nil with the status and body of the refusal.
func upgradeOn(t *testing.T, conn net.Conn, secret, extra string) (*rawStream, int, string) {
	t.Helper()
	req := "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + stream.Protocol + "\r\n" + api.TokenHeader + ": " + secret + "\r\n" + extra + "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	in := bufio.NewReader(conn)
	resp, err := http.ReadResponse(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, string(body) + " retry=" + resp.Header.Get(api.RetryHeader)
	}
	return &rawStream{conn: conn, in: in, features: resp.Header.Get(stream.FeaturesHeader)}, resp.StatusCode, ""
}

func (rs *rawStream) sendBytes(t *testing.T, b []byte) {
	t.Helper()
	if _, err := rs.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (rs *rawStream) send(t *testing.T, kind stream.Kind, id uint32, v any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	rs.sendBytes(t, stream.Append(nil, stream.Frame{Kind: kind, ID: id, Body: body}))
}

// recv reads the next frame (the deadline set at openRaw bounds it).
func (rs *rawStream) recv(t *testing.T) stream.Frame {
	t.Helper()
	f, err := stream.Read(rs.in, stream.MaxAnswer)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// closingFrame reads frames until the stream's closing frame, and then
// expects the connection closed.
func (rs *rawStream) closingFrame(t *testing.T) stream.Error {
	t.Helper()
	for {
		f := rs.recv(t)
		if f.Kind != stream.KindClosing {
			continue
		}
		var e stream.Error
		if err := json.Unmarshal(f.Body, &e); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Read(rs.in, stream.MaxAnswer); err != io.EOF {
			t.Fatalf("after the closing frame: %v, want the connection closed", err)
		}
		return e
	}
}

func frameErr(t *testing.T, f stream.Frame) stream.Error {
	t.Helper()
	if f.Kind != stream.KindError {
		t.Fatalf("got a %s frame %q, want an error", f.Kind, f.Body)
	}
	var e stream.Error
	if err := json.Unmarshal(f.Body, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestStream_PeerSpeaksOnlyForItself: on its own stream a worker's
// heartbeat, lease and report naming another worker are each refused with
// 403, as the HTTP routes refuse them, and the stream goes on serving its
// own heartbeats.
func TestStream_PeerSpeaksOnlyForItself(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	secret, cert := streamWorker(t, c, "alpha")
	streamWorker(t, c, "beta")
	rs := mustOpenRaw(t, c, c.Leader(), secret, cert, "")
	rs.send(t, stream.KindHeartbeat, 1, api.HeartbeatRequest{Worker: "beta", Cores: 64})
	rs.send(t, stream.KindLease, 2, api.LeaseRequest{Worker: "beta", Max: 1})
	rs.send(t, stream.KindReport, 3, api.ReportRequest{Worker: "beta", Reports: []api.Report{{TaskRef: api.TaskRef{Job: "j", Index: 0, Attempt: 1}}}})
	for range 3 {
		f := rs.recv(t)
		if e := frameErr(t, f); e.Code != http.StatusForbidden || !strings.Contains(e.Error, "speaks only for itself") {
			t.Errorf("request %d for another worker: %+v, want 403", f.ID, e)
		}
	}
	rs.send(t, stream.KindHeartbeat, 4, api.HeartbeatRequest{Cores: 1})
	if f := rs.recv(t); f.Kind != stream.KindAnswer || f.ID != 4 {
		t.Fatalf("its own heartbeat after the refusals: %s %d %q", f.Kind, f.ID, f.Body)
	}
}

// TestStream_RevokedCredentialEndsIt: a worker revoked while its stream is
// open loses the stream at its next message, with a 401 closing frame
// saying the credential is revoked; the leader holds no stream after it,
// and the client reports the refusal.
func TestStream_RevokedCredentialEndsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	secret, cert := streamWorker(t, c, "alpha")
	rs := mustOpenRaw(t, c, leader, secret, cert, "")
	cl := streamClient(c, secret, cert, leader)
	beat := func() error {
		_, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Cores: 1})
		return err
	}
	if err := beat(); err != nil {
		t.Fatal(err)
	}
	if n := server.OpenStreams(leader.Server); n != 2 {
		t.Fatalf("%d streams open, want 2", n)
	}
	if err := c.Client(leader).RevokePeer(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	rs.send(t, stream.KindHeartbeat, 1, api.HeartbeatRequest{Cores: 1})
	if e := rs.closingFrame(t); e.Code != http.StatusUnauthorized || !strings.Contains(e.Error, "revoked") {
		t.Fatalf("closing frame after the revocation: %+v, want 401 saying revoked", e)
	}
	// The client's next heartbeat may go quiet (sent, not waited for): the
	// server ends the stream on reading it, and the call after that fails.
	var err error
	testcluster.Eventually(t, 10*time.Second, "a heartbeat refused after the revocation", func() bool { err = beat(); return err != nil })
	if !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the client's heartbeat after the revocation: %v, want 401 saying revoked", err)
	}
	testcluster.Eventually(t, 10*time.Second, "no stream open", func() bool { return server.OpenStreams(leader.Server) == 0 })
}

// TestStream_MalformedFramesEndItSayingWhy: a frame of no known kind, one
// announcing a body over the limit, an answer sent by a client and a
// request id already in flight each end the stream with a 400 closing
// frame naming what was wrong.
func TestStream_MalformedFramesEndItSayingWhy(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	oversize := stream.Append(nil, stream.Frame{Kind: stream.KindReport, ID: 5})
	oversize[5] = 0xff // 4 GiB announced
	longPoll := func(id uint32) []byte {
		body, _ := json.Marshal(api.LeaseRequest{Worker: "w1", Max: 1, Wait: 20 * time.Second})
		return stream.Append(nil, stream.Frame{Kind: stream.KindLease, ID: id, Body: body})
	}
	cases := []struct {
		name string
		send []byte
		want string
	}{
		{"unknown kind", stream.Append(nil, stream.Frame{Kind: 0x42, ID: 7}), "unknown kind 0x42 (request id 7)"},
		{"oversize", oversize, "report frame 5: body of 4278190080 bytes, at most 67108864"},
		{"answer from a client", stream.Append(nil, stream.Frame{Kind: stream.KindAnswer, ID: 1}), "answer frames come from the server, not a client"},
		{"id in flight", append(longPoll(9), longPoll(9)...), "request id 9 is already in flight"},
		{"quiet heartbeat not asked for", stream.Append(nil, stream.Frame{Kind: stream.KindQuietHeartbeat, ID: 3, Body: []byte(`{"worker":"w1"}`)}),
			"quiet heartbeat (frame 3) on a stream that did not ask for quiet-heartbeats"},
	}
	for _, tc := range cases {
		rs := mustOpenRaw(t, c, leader, testcluster.Token, nil, "")
		rs.sendBytes(t, tc.send)
		if e := rs.closingFrame(t); e.Code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: closing frame %+v, want 400 naming %q", tc.name, e, tc.want)
		}
	}
}

// TestStream_IdleStreamIsClosed: a stream that carries nothing for two
// worker TTLs is closed with a closing frame saying it was idle.
func TestStream_IdleStreamIsClosed(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{WorkerTTL: 300 * time.Millisecond})
	rs := mustOpenRaw(t, c, c.Leader(), testcluster.Token, nil, "")
	if e := rs.closingFrame(t); e.Code != http.StatusBadRequest || !strings.Contains(e.Error, "idle") {
		t.Fatalf("closing frame of an idle stream: %+v", e)
	}
}

// TestStream_FollowerRefusesAndClientFallsBack: a follower answers a
// stream upgrade 503 (not the leader, safe to retry) and a request that is
// no upgrade 400; a stream client given only the follower heartbeats
// through plain requests, which the follower forwards.
func TestStream_FollowerRefusesAndClientFallsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 3, testcluster.Options{})
	follower := c.Followers()[0]
	_, code, body := openRaw(t, c, follower, testcluster.Token, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "served by the leader only") || !strings.Contains(body, "retry=safe") {
		t.Fatalf("a stream asked of a follower: %d %s, want 503 not leader, retry safe", code, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Leader().HTTPAddr+stream.Path, nil)
	req.Header.Set(api.TokenHeader, testcluster.Token)
	resp, err := c.Client(c.Leader()).HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plainBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(plainBody), "a worker stream needs") {
		t.Fatalf("a plain GET %s: %d %s, want 400 naming what a stream needs", stream.Path, resp.StatusCode, plainBody)
	}
	cl := streamClient(c, testcluster.Token, nil, follower)
	for range 3 {
		if _, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1", Cores: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := cl.WorkerStreamOpen(); ok {
		t.Fatal("a stream is open through a follower")
	}
	if n := server.StreamFrames(c.Leader().Server); n != 0 {
		t.Fatalf("the leader served %d stream frames", n)
	}
}

// TestStream_MovesToTheNewLeaderAfterFailover: when the leader goes down
// its stream ends; the worker's next heartbeats reach the new leader
// (as requests while there is none, then on a stream to it), and leases
// work on the new stream.
func TestStream_MovesToTheNewLeaderAfterFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := testcluster.New(t, 3, testcluster.Options{})
	old := c.Leader()
	cl := streamClient(c, testcluster.Token, nil, c.Nodes...)
	hb := &api.HeartbeatRequest{Worker: "w1", Cores: 1, Engines: []string{"wazero"}}
	if _, err := cl.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if addr, ok := cl.WorkerStreamOpen(); !ok || addr != old.HTTPAddr {
		t.Fatalf("stream on %q (%v), want the leader %s", addr, ok, old.HTTPAddr)
	}
	c.Stop(old)
	next := c.Leader()
	submitEcho(t, c.Client(next), 2)
	testcluster.Eventually(t, 30*time.Second, "the stream on the new leader", func() bool {
		_, err := cl.Heartbeat(ctx, hb)
		addr, ok := cl.WorkerStreamOpen()
		return err == nil && ok && addr == next.HTTPAddr
	})
	got, err := cl.Lease(ctx, &api.LeaseRequest{Worker: "w1", Cores: 1, Max: 2, Engines: []string{"wazero"}})
	if err != nil || len(got) != 2 {
		t.Fatalf("lease after the failover: %d tasks, %v", len(got), err)
	}
	if n := server.StreamFrames(next.Server); n < 2 {
		t.Fatalf("the new leader served %d stream frames, want the heartbeat and the lease", n)
	}
}

// TestStream_OldServerIsUsedThroughRequests: a server without the route
// (404) is asked for a stream once; the worker's calls then go as
// requests, and it is not asked again at every call.
func TestStream_OldServerIsUsedThroughRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	var asked atomic.Int64
	real := c.Leader().Server.Handler()
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stream.Path {
			asked.Add(1)
			http.NotFound(w, r)
			return
		}
		real.ServeHTTP(w, r)
	}))
	defer old.Close()
	cl := client.New(old.URL, testcluster.Token)
	cl.WorkerStream = true
	for range 3 {
		if _, err := cl.Heartbeat(ctx, &apiHeartbeat); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Report(ctx, &apiReport); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the old server was asked for a stream %d times, want once", n)
	}
	if _, ok := cl.WorkerStreamOpen(); ok {
		t.Fatal("a stream is open on a server without the route")
	}
}

var (
	apiHeartbeat = api.HeartbeatRequest{Worker: "w1", Cores: 1}
	apiReport    = api.ReportRequest{Worker: "w1", Reports: []api.Report{}}
)

// TestStream_CancelledLeaseStopsItsLongPoll: a worker that gives up on a
// lease long-polling on its stream (it stops, drains) closes the stream,
// as a cancelled request closes its connection, so the leader grants the
// next job's tasks to a worker still asking, not to the one that left.
func TestStream_CancelledLeaseStopsItsLongPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	gone := streamClient(c, testcluster.Token, nil, leader)
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() {
		_, err := gone.Lease(pollCtx, &api.LeaseRequest{Worker: "gone", Cores: 1, Max: 4, Wait: 20 * time.Second})
		polled <- err
	}()
	testcluster.Eventually(t, 10*time.Second, "the lease long-polling on the stream", func() bool { return server.StreamFrames(leader.Server) == 1 })
	stopPoll()
	if err := <-polled; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled lease: %v", err)
	}
	testcluster.Eventually(t, 10*time.Second, "the stream closed", func() bool { return server.OpenStreams(leader.Server) == 0 })
	submitEcho(t, c.Client(leader), 4)
	got, err := streamClient(c, testcluster.Token, nil, leader).Lease(ctx, &api.LeaseRequest{Worker: "here", Cores: 1, Max: 4, Wait: 10 * time.Second})
	if err != nil || len(got) != 4 {
		t.Fatalf("the worker still asking got %d of 4 tasks, %v", len(got), err)
	}
}

// TestStream_BoundsRequestsInFlight: with stream.MaxInFlight leases
// long-polling and one more waiting for a slot, the leader reads no
// further frame: a heartbeat sent after them is answered only once a
// lease has been.
func TestStream_BoundsRequestsInFlight(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	rs := mustOpenRaw(t, c, leader, testcluster.Token, nil, "")
	for i := range stream.MaxInFlight + 1 {
		rs.send(t, stream.KindLease, uint32(i+1), api.LeaseRequest{Worker: "w" + string(rune('a'+i)), Max: 1, Wait: 20 * time.Second})
	}
	rs.send(t, stream.KindHeartbeat, 100, api.HeartbeatRequest{Worker: "hb", Cores: 1})
	testcluster.Eventually(t, 10*time.Second, "every lease admitted", func() bool {
		return server.StreamFrames(leader.Server) == stream.MaxInFlight+1
	})
	submitEcho(t, c.Client(leader), 1)
	first := rs.recv(t)
	if first.Kind != stream.KindAnswer || first.ID == 100 {
		t.Fatalf("first answer: %s %d %q; want a lease's, before the heartbeat read past the bound", first.Kind, first.ID, first.Body)
	}
	if next := rs.recv(t); next.ID != 100 || next.Kind != stream.KindAnswer {
		t.Fatalf("after a lease was answered: %s %d %q, want the heartbeat's answer", next.Kind, next.ID, next.Body)
	}
}

// TestStream_LeaderThatStepsDownEndsItsStreams: a leader cut off from its
// group steps down and ends its streams with a 503 closing frame (nothing
// applied), while it keeps running; the client's next heartbeat opens a
// stream on the new leader.
func TestStream_LeaderThatStepsDownEndsItsStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := testcluster.New(t, 3, testcluster.Options{})
	old := c.Leader()
	rs := mustOpenRaw(t, c, old, testcluster.Token, nil, "")
	var others []string
	var rest []*testcluster.Node
	for _, n := range c.Followers() {
		others, rest = append(others, n.ID), append(rest, n)
	}
	c.Net.Cut([]string{old.ID}, others)
	if e := rs.closingFrame(t); e.Code != http.StatusServiceUnavailable || !e.RetrySafe || !strings.Contains(e.Error, "served by the leader only") {
		t.Fatalf("closing frame of a leader that stepped down: %+v, want 503, retry safe", e)
	}
	if old.Server.Store().IsLeader() {
		t.Fatal("the stream ended while its server still leads")
	}
	next := c.LeaderOf(rest)
	cl := streamClient(c, testcluster.Token, nil, old, next)
	testcluster.Eventually(t, 30*time.Second, "a stream on the new leader", func() bool {
		_, err := cl.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1", Cores: 1})
		addr, ok := cl.WorkerStreamOpen()
		return err == nil && ok && addr == next.HTTPAddr
	})
	c.Net.Heal()
}

// TestStream_ConcurrentLeasesEachDecodeAndAnswerTheirOwn: leases carrying
// reports of varied sizes, eight at a time on four streams, each get the
// tasks their answer names with those tasks' own arguments, and every
// report lands as sent. The stream copies request bodies into pooled
// buffers and encodes answers into them: a buffer given back while still
// read or written would garble a report or an answer here.
func TestStream_ConcurrentLeasesEachDecodeAndAnswerTheirOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := testcluster.New(t, 1, testcluster.Options{})
	leader := c.Leader()
	const n = 400
	job := submitEcho(t, c.Client(leader), n)
	stdout := func(index int) []byte { // 10 to 200 bytes, different for each task
		return []byte(fmt.Sprintf("task %d %s\n", index, strings.Repeat(string(rune('a'+index%26)), index%191)))
	}
	clients := make([]*client.Client, 4)
	for i := range clients {
		clients[i] = streamClient(c, testcluster.Token, nil, leader)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(clients))
	for g := range 2 * len(clients) { // two goroutines share each client, and so its stream
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- leaseUntilDone(ctx, clients[g/2], fmt.Sprintf("w%d", g/2), job, n, stdout)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if frames := server.StreamFrames(leader.Server); frames < 50 {
		t.Fatalf("the leader served %d stream frames, want the leases on streams", frames)
	}
	results, err := c.Client(leader).Results(ctx, job)
	if err != nil || len(results) != n {
		t.Fatalf("results: %d, %v; want %d", len(results), err, n)
	}
	for _, r := range results {
		if !bytes.Equal(r.Stdout, stdout(r.Index)) {
			t.Fatalf("task %d's stdout %q, want %q", r.Index, r.Stdout, stdout(r.Index))
		}
	}
}

// leaseUntilDone leases up to 3 tasks a call as worker until a call
// grants nothing and carries nothing, each call carrying the reports of
// the tasks the one before got (their stdout as stdout says). It fails if
// an answer's task has another's arguments or a report is refused.
func leaseUntilDone(ctx context.Context, cl *client.Client, worker, job string, n int, stdout func(int) []byte) error {
	var reports []api.Report
	for {
		resp, err := cl.LeaseWithReports(ctx, &api.LeaseRequest{Worker: worker, Cores: 3, Max: 3, Engines: []string{"wazero"}, Reports: reports})
		if err != nil {
			return err
		}
		if len(resp.Accepted) != len(reports) || slices.Contains(resp.Accepted, false) {
			return fmt.Errorf("%s: reports %d accepted as %v", worker, len(reports), resp.Accepted)
		}
		if len(resp.Tasks) == 0 && len(reports) == 0 {
			return nil
		}
		reports = reports[:0]
		for _, a := range resp.Tasks {
			if want := []string{strconv.Itoa(a.Index), strconv.Itoa(n)}; a.Job != job || !slices.Equal(a.Args, want) {
				return fmt.Errorf("%s: task %s/%d came with args %q, want %q", worker, a.Job, a.Index, a.Args, want)
			}
			reports = append(reports, api.Report{TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt},
				Result: tasks.Result{Stdout: stdout(a.Index), Duration: time.Millisecond, Engine: "wazero"}})
		}
	}
}
