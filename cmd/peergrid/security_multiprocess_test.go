package main

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/worker"
)

// TestMultiProcess_StrangersJoinWithAWorkerToken is issue 12's
// multi-process acceptance: three servers on TLS; two volunteers' agents
// join with a worker token (not the operator's) and run a job. What one of
// them holds in its data dir (its credential and certificate) cannot
// submit, cancel, add a server, remove one or speak Raft; a second process
// claiming its id is refused and runs nothing; `peergrid peers revoke`
// cuts it off mid-job, its leases go back to the queue, and the job
// completes on the other with every task done once and right.
func TestMultiProcess_StrangersJoinWithAWorkerToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGSTOP")
	}
	c := proctest.StartServers(t, 3, proctest.Options{WorkerTTL: time.Second})
	op := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker, Name: "volunteers"})
	if err != nil {
		t.Fatal(err)
	}
	dir1 := t.TempDir()
	w1 := c.AddWorker("vol-1", 1, "--token", tok.Secret, "--data-dir", dir1)
	c.AddWorker("vol-2", 1, "--token", tok.Secret)

	const n = 3000
	id := submitEchoJob(ctx, t, op, n)
	proctest.Eventually(t, 60*time.Second, "vol-1 to have done a task", func() bool {
		peers, err := op.Peers(ctx)
		if err != nil {
			return false
		}
		for _, p := range peers {
			if p.ID == "vol-1" && p.Done > 0 {
				return true
			}
		}
		return false
	})

	// What a thief with vol-1's data dir holds.
	cred, err := auth.LoadPeerCredential(filepath.Join(dir1, "worker"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := worker.ShardTLS(filepath.Join(dir1, "worker"))
	if err != nil || cert == nil {
		t.Fatalf("vol-1's certificate: %v %v", cert, err)
	}
	stolen := client.New(strings.Join(c.HTTPAddrs(), ","), cred.Secret)
	stolen.Pin(c.Pin())
	stolen.Identify(cert)
	stolen.Retries = 1
	forbidden := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, client.ErrForbidden) {
			t.Errorf("vol-1's credential and certificate %s: %v, want 403", what, err)
		}
	}
	_, err = stolen.Submit(ctx, &tasks.JobSpec{Name: "x", ModuleHash: strings.Repeat("ab", 32), Tasks: 1})
	forbidden("submit", err)
	forbidden("cancel", stolen.Cancel(ctx, id))
	forbidden("add a server", stolen.Join(ctx, &api.JoinRequest{ID: "evil", RaftAddr: "127.0.0.1:1", HTTPAddr: "https://127.0.0.1:1"}))
	forbidden("remove a server", stolen.RemoveRaftPeer(ctx, c.Servers[0].ID))
	raftConn, err := tls.Dial("tcp", c.Servers[0].RaftAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}})
	if err == nil {
		// TLS 1.3: the server's verdict on the client certificate comes with
		// the first read.
		raftConn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = raftConn.Read(make([]byte, 1))
		raftConn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Raft with vol-1's certificate: %v, want the handshake refused", err)
	}

	// A second process claiming vol-1's id.
	dup := c.AddWorker("vol-1", 1, "--token", tok.Secret)
	if err := dup.Wait(30 * time.Second); err == nil || dup.ExitCode() == 0 || !strings.Contains(dup.Log(), "already held") {
		t.Errorf("a second vol-1: exit %d (%v), log:\n%s", dup.ExitCode(), err, dup.Log())
	}

	// Revoke vol-1 while it holds leases (frozen, so it surely does).
	if err := w1.Pause(); err != nil {
		t.Fatal(err)
	}
	held := 0
	if peers, err := op.Peers(ctx); err == nil {
		for _, p := range peers {
			if p.ID == "vol-1" {
				held = p.Leased
			}
		}
	}
	before := jobcheck.WaitJob(t, op, id, 10*time.Second, func(*api.JobSummary) bool { return true })
	if before.State.Finished() || held == 0 {
		t.Fatalf("at the revoke the job is %s and vol-1 holds %d leases: the test proves nothing", before.State, held)
	}
	t.Logf("revoking vol-1 holding %d leases, %d of %d tasks done", held, before.Done, n)
	if _, stderr, err := proctest.Run(ctx, t, "peers", "revoke", "vol-1", "--addr", c.Servers[0].HTTPAddr, "--token", proctest.Token, "--ca-file", c.CAFile()); err != nil {
		t.Fatalf("peers revoke: %v\n%s", err, stderr)
	}
	if err := w1.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := stolen.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "vol-1", Cores: 1}); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("vol-1 after peers revoke: %v, want 401 saying revoked", err)
	}
	sum := jobcheck.WaitJob(t, op, id, 90*time.Second, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete {
		t.Fatalf("job %s ended %s: %+v", id, sum.State, sum)
	}
	jobcheck.Results(t, op, id, n, echoOf)
}
