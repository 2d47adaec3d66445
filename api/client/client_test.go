package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// closedAddr is an address nothing listens on: a dial fails at once.
func closedAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	return addr
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func TestClient_SendsTheTokenHeader(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(api.TokenHeader)
		writeJSON(w, http.StatusOK, []api.Peer{})
	}))
	defer srv.Close()
	if _, err := New(srv.URL, "s3cret").Peers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "s3cret" {
		t.Fatalf("token header %q", got)
	}
}

// TestClient_StatusErrorsWrapSentinels: a non-2xx answer is a StatusError
// with the server's message that matches the sentinel of its code.
func TestClient_StatusErrorsWrapSentinels(t *testing.T) {
	for code, want := range map[int]error{http.StatusUnauthorized: ErrUnauthorized, http.StatusForbidden: ErrForbidden, http.StatusNotFound: ErrNotFound, http.StatusServiceUnavailable: ErrUnavailable} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, code, api.Error{Error: "the reason " + strconv.Itoa(code)})
		}))
		c := New(srv.URL, "")
		c.Retries = 1
		_, err := c.Job(context.Background(), "j-1")
		srv.Close()
		var se *StatusError
		if !errors.Is(err, want) || !errors.As(err, &se) || se.Code != code || se.Message != "the reason "+strconv.Itoa(code) {
			t.Errorf("HTTP %d: error %v, want %v with the server's reason", code, err, want)
		}
	}
}

// TestClient_FailsOverPastAnUnreachableServer: a request whose first server
// cannot be dialled goes to the next one, and the client stays there.
func TestClient_FailsOverPastAnUnreachableServer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusCreated, api.SubmitResponse{ID: "j-ok"})
	}))
	defer srv.Close()
	c := New(closedAddr(t), "", srv.URL)
	id, err := c.Submit(context.Background(), &tasks.JobSpec{Name: "x"})
	if err != nil || id != "j-ok" {
		t.Fatalf("submit through failover: %q, %v", id, err)
	}
	if c.Addr != c.Addrs()[0] || c.base() != srv.URL {
		t.Fatalf("client now uses %s, want %s", c.base(), srv.URL)
	}
	if hits.Load() != 1 {
		t.Fatalf("the live server was asked %d times", hits.Load())
	}
}

// TestClient_RetriesAWriteOnlyWhenRepeatingItIsSafe: a 503 is sent to the
// next server when the server marked it safe (nothing was applied) or the
// call is safe to repeat (a cancel); a lease answered by an unmarked 503
// (it may have been applied) is returned, never sent twice.
func TestClient_RetriesAWriteOnlyWhenRepeatingItIsSafe(t *testing.T) {
	lease := func(c *Client) error {
		_, err := c.Lease(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1})
		return err
	}
	cancel := func(c *Client) error { return c.Cancel(context.Background(), "j-1") }
	for _, tc := range []struct {
		name      string
		call      func(*Client) error
		marked    bool
		wantRetry bool
	}{
		{"lease, marked safe", lease, true, true},
		{"lease, unmarked", lease, false, false},
		{"cancel, unmarked", cancel, false, true},
	} {
		var first, second atomic.Int32
		a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			first.Add(1)
			if tc.marked {
				w.Header().Set(api.RetryHeader, "safe")
			}
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: "no cluster leader"})
		}))
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			second.Add(1)
			writeJSON(w, http.StatusOK, api.LeaseResponse{})
		}))
		err := tc.call(New(a.URL, "", b.URL))
		a.Close()
		b.Close()
		if tc.wantRetry && (err != nil || second.Load() != 1) {
			t.Errorf("%s: err %v, second server asked %d times, want once", tc.name, err, second.Load())
		}
		if !tc.wantRetry && (!errors.Is(err, ErrUnavailable) || second.Load() != 0 || first.Load() != 1) {
			t.Errorf("%s: err %v, first asked %d, second %d; want the error after one try", tc.name, err, first.Load(), second.Load())
		}
	}
}

// TestClient_SilentServerCostsABoundedWait: a server that accepts the
// connection and never answers (a frozen process) costs one attempt
// timeout for a write that is safe to repeat, then the next server answers;
// a read is hedged to the next server without waiting out the first.
func TestClient_SilentServerCostsABoundedWait(t *testing.T) {
	block := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer silent.Close()
	defer close(block) // before Close, which waits for the handlers
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/peers" {
			writeJSON(w, http.StatusOK, []api.Peer{{ID: "s1"}})
			return
		}
		writeJSON(w, http.StatusOK, api.HeartbeatResponse{TTL: 7})
	}))
	defer live.Close()

	c := New(silent.URL, "", live.URL)
	c.AttemptTimeout, c.HedgeAfter = 300*time.Millisecond, time.Hour // no hedging: the timeout must fail over
	if err := c.Cancel(context.Background(), "j-1"); err != nil {
		t.Fatalf("cancel past a silent server: %v", err)
	}
	if c.base() != live.URL {
		t.Fatalf("after failing over the client uses %s", c.base())
	}

	c = New(silent.URL, "", live.URL)
	c.AttemptTimeout, c.HedgeAfter = time.Hour, 50*time.Millisecond // only hedging can answer
	if peers, err := c.Peers(context.Background()); err != nil || len(peers) != 1 {
		t.Fatalf("hedged read past a silent server: %v, %v", peers, err)
	}
	hb, err := c.Heartbeat(context.Background(), &api.HeartbeatRequest{Worker: "w"})
	if err != nil || hb.TTL != 7 {
		t.Fatalf("hedged heartbeat: %+v, %v", hb, err)
	}
}

// TestClient_ErrorOfABodylessAnswerComesFromItsHeader: a 503 to a HEAD
// has no body; the error still carries the server's reason.
func TestClient_ErrorOfABodylessAnswerComesFromItsHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ErrorHeader, "no cluster leader (waited 5s)")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := New(srv.URL, "")
	c.Retries = 1
	_, err := c.HasBlob(context.Background(), strings.Repeat("a", 64))
	if err == nil || !strings.Contains(err.Error(), "no cluster leader (waited 5s)") {
		t.Fatalf("HEAD error %v, want the server's reason", err)
	}
}

// TestClient_EachResultPageFollowsOffsetsToTheTotal: pages are asked from
// the offset reached so far until the total is seen.
func TestClient_EachResultPageFollowsOffsetsToTheTotal(t *testing.T) {
	const total, per = 7, 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		page := api.ResultsPage{Offset: off, Total: total}
		for i := off; i < min(off+per, total); i++ {
			page.Results = append(page.Results, api.TaskResult{TaskStatus: api.TaskStatus{Index: i, State: tasks.TaskDone}, Stdout: []byte(fmt.Sprint(i))})
		}
		writeJSON(w, http.StatusOK, page)
	}))
	defer srv.Close()
	var seen []int
	err := New(srv.URL, "").EachResultPage(context.Background(), "j-1", func(page []api.TaskResult) error {
		for _, r := range page {
			seen = append(seen, r.Index)
		}
		return nil
	})
	if err != nil || fmt.Sprint(seen) != "[0 1 2 3 4 5 6]" {
		t.Fatalf("pages gave %v, %v", seen, err)
	}
}

// TestClient_DownloadResultsWritesEachFinishedTask: .out and .err per
// finished task, nothing for a task still running.
func TestClient_DownloadResultsWritesEachFinishedTask(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.ResultsPage{Total: 3, Results: []api.TaskResult{
			{TaskStatus: api.TaskStatus{Index: 0, State: tasks.TaskDone}, Stdout: []byte("zero\n")},
			{TaskStatus: api.TaskStatus{Index: 1, State: tasks.TaskFailed}, Stderr: []byte("trap\n")},
			{TaskStatus: api.TaskStatus{Index: 2, State: tasks.TaskLeased}},
		}})
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "out")
	n, err := New(srv.URL, "").DownloadResults(context.Background(), "j-1", dir)
	if err != nil || n != 2 {
		t.Fatalf("wrote %d results, %v; want 2", n, err)
	}
	for name, want := range map[string]string{"0.out": "zero\n", "0.err": "", "1.out": "", "1.err": "trap\n"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "2.out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a running task's result was written: %v", err)
	}
}

// TestClient_SubmitJobFileRefusesAModuleThatIsNotWasm: the error names the
// module file, and nothing reaches the server.
func TestClient_SubmitJobFileRefusesAModuleThatIsNotWasm(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	dir := t.TempDir()
	mod := filepath.Join(dir, "main.wasm")
	if err := os.WriteFile(mod, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(srv.URL, "").SubmitJobFile(context.Background(), &tasks.JobFile{Path: filepath.Join(dir, "job.toml"), ModulePath: mod})
	if !errors.Is(err, ErrNotWasm) || !contains(err.Error(), "main.wasm") {
		t.Fatalf("error %v, want ErrNotWasm naming main.wasm", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the server was asked %d times", hits.Load())
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestClient_LongPollOnAFrozenServerEndsWhenAHeartbeatMovesOn: a worker's
// lease long poll held by a server that froze ends as soon as the worker's
// heartbeat, hedged, is answered by another server, not when the poll's
// own wait runs out.
func TestClient_LongPollOnAFrozenServerEndsWhenAHeartbeatMovesOn(t *testing.T) {
	block := make(chan struct{})
	var leases atomic.Int32
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/lease" {
			leases.Add(1)
		}
		<-block
	}))
	defer frozen.Close()
	defer close(block)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.HeartbeatResponse{TTL: 7})
	}))
	defer live.Close()
	c := New(frozen.URL, "", live.URL)
	c.HedgeAfter = 50 * time.Millisecond
	leaseDone := make(chan error, 1)
	go func() {
		_, err := c.Lease(context.Background(), &api.LeaseRequest{Worker: "w", Max: 1, Wait: time.Hour})
		leaseDone <- err
	}()
	// The lease is on the frozen server before the heartbeat goes out.
	for deadline := time.Now().Add(10 * time.Second); leases.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lease never reached the first server")
		}
	}
	if _, err := c.Heartbeat(context.Background(), &api.HeartbeatRequest{Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-leaseDone:
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("lease ended with %v, want ErrNoAnswer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lease long poll still waits on the frozen server")
	}
}

// TestClient_StopsRetryingAfterRetryFor: a server that keeps answering
// "no leader, safe to retry" after a wait is asked again only while the
// call is younger than RetryFor, so the call ends in bounded time.
func TestClient_StopsRetryingAfterRetryFor(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 2 {
			time.Sleep(2500 * time.Millisecond) // the server's own wait for a leader, past RetryFor
		}
		w.Header().Set(api.RetryHeader, "safe")
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: "no cluster leader"})
	}))
	defer srv.Close()
	c := New(srv.URL, "")
	// The first answer is at once, so the second attempt starts well within
	// RetryFor even on a loaded machine; it ends past RetryFor, so no third.
	c.Retries, c.RetryFor = 100, 2*time.Second
	_, err := c.Jobs(context.Background())
	if !errors.Is(err, ErrUnavailable) || hits.Load() != 2 {
		t.Fatalf("error %v after %d attempts; want ErrUnavailable after 2 (the second started within RetryFor)", err, hits.Load())
	}
}

// TestClient_WriteWhoseEarlierAttemptMayHaveAppliedSaysSo: the last
// attempt said nothing was applied, but an earlier one went unanswered:
// the error is ErrOutcomeUnknown, not a clean refusal.
func TestClient_WriteWhoseEarlierAttemptMayHaveAppliedSaysSo(t *testing.T) {
	block := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer silent.Close()
	defer close(block)
	noLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.RetryHeader, "safe")
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: "no cluster leader: nothing was applied"})
	}))
	defer noLeader.Close()
	c := New(silent.URL, "", noLeader.URL)
	c.AttemptTimeout, c.Retries = 100*time.Millisecond, 2 // the silent server, then the one with no leader
	err := c.PutBlob(context.Background(), strings.Repeat("a", 64), []byte("x"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrOutcomeUnknown wrapping the last 503", err)
	}
	c = New(noLeader.URL, "")
	c.RetryFor = time.Millisecond
	if err := c.PutBlob(context.Background(), strings.Repeat("a", 64), []byte("x")); errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write only ever refused: %v, want a plain ErrUnavailable", err)
	}
}

// TestClient_UploadIsGivenTimeInItsSize: a server that takes longer than
// AttemptTimeout to store a large upload is waited for (2 s per MiB more),
// while the same delay on a bodyless call still times out.
func TestClient_UploadIsGivenTimeInItsSize(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(600 * time.Millisecond) // the server storing the bytes
		w.WriteHeader(http.StatusOK)
	}))
	defer slow.Close()
	c := New(slow.URL, "")
	c.AttemptTimeout, c.RetryFor = 200*time.Millisecond, time.Millisecond
	data := make([]byte, 1<<20) // 2 s more: 2.2 s in all
	if err := c.PutBlob(context.Background(), storage.Hash(data), data); err != nil {
		t.Fatalf("1 MiB upload to a server that takes 0.6 s: %v", err)
	}
	if _, err := c.HasBlob(context.Background(), storage.Hash(data)); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("HEAD to the same server: %v, want no answer within 0.2 s", err)
	}
}
