package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// replicaGrid is a server with no worker of its own and a job of n tasks
// with replicas = 2, quorum = 2, whose replicas the test leases and
// reports as workers w1, w2, w3 (the dev client is an operator, which may
// speak for any worker).
func replicaGrid(t *testing.T, ctx context.Context, n int) (*devgrid.Grid, *client.Client, string) {
	t.Helper()
	g := startServerGrid(t)
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "replicated", ModuleHash: storage.Hash(mod), Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10, Replicas: 2, Quorum: 2, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		if _, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: w, Cores: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return g, c, id
}

func leaseOne(t *testing.T, ctx context.Context, c *client.Client, worker string) api.Assignment {
	t.Helper()
	got, err := c.Lease(ctx, &api.LeaseRequest{Worker: worker, Cores: 1, Max: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("%s's lease: %v, %v", worker, got, err)
	}
	return got[0]
}

func report(t *testing.T, ctx context.Context, c *client.Client, worker string, a api.Assignment, stdout string) {
	t.Helper()
	ok, err := c.Report(ctx, &api.ReportRequest{Worker: worker, Reports: []api.Report{{
		TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}, Result: tasks.Result{Stdout: []byte(stdout)}}}})
	if err != nil || len(ok) != 1 || !ok[0] {
		t.Fatalf("%s's report: %v, %v", worker, ok, err)
	}
}

// TestReplicas_ServerJudgesReportsByTheirBytes: the result hash is the
// leader's, from the bytes a report carries: a report that brings a hash
// of its own is refused outright, and a report whose stdout differs from
// the others' is outvoted whatever it claims, shown as such in the job's
// status and the peers' records.
func TestReplicas_ServerJudgesReportsByTheirBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, c, id := replicaGrid(t, ctx, 1)
	a1, a2 := leaseOne(t, ctx, c, "w1"), leaseOne(t, ctx, c, "w2")
	report(t, ctx, c, "w1", a1, "right\n")
	rightHash := tasks.ResultHash(0, (&tasks.Result{Stdout: []byte("right\n")}).StdoutSum())

	body, _ := json.Marshal(map[string]any{"worker": "w2", "reports": []map[string]any{{
		"job": a2.Job, "index": a2.Index, "attempt": a2.Attempt, "exit_code": 0, "stdout": []byte("wrong\n"), "duration_ns": 1, "hash": rightHash}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.Addr+"/v1/report", bytes.NewReader(body))
	req.Header.Set(api.TokenHeader, g.Token)
	resp, err := c.HTTP.Do(req) // the client pinned to the grid's CA
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), `unknown field \"hash\"`) {
		t.Fatalf("a report carrying its own hash: %s %s, want 400 naming the field", resp.Status, msg)
	}

	report(t, ctx, c, "w2", a2, "wrong\n")
	st := taskOf(t, ctx, c, id)
	if st.State == tasks.TaskDone || len(st.Replicas) != 2 || st.Replicas[0].Hash != rightHash || st.Replicas[1].Hash == rightHash {
		t.Fatalf("after disagreeing votes: %s %+v", st.State, st.Replicas)
	}
	report(t, ctx, c, "w3", leaseOne(t, ctx, c, "w3"), "right\n")
	st = taskOf(t, ctx, c, id)
	if st.State != tasks.TaskDone || st.Replicas[1].Verdict != api.VerdictOutvoted || st.Replicas[1].Worker != "w2" {
		t.Fatalf("after the third vote: %s %+v", st.State, st.Replicas)
	}
	res, err := c.Results(ctx, id)
	if err != nil || string(res[0].Stdout) != "right\n" {
		t.Fatalf("result: %+v, %v", res, err)
	}
	peers := peersByID(t, ctx, c)
	if p := peers["w2"]; p.Outvoted != 1 || p.Streak != 0 || p.Distrusted {
		t.Fatalf("w2's record: %+v", p)
	}
	if p := peers["w1"]; p.Agreed != 1 || p.Streak != 1 {
		t.Fatalf("w1's record: %+v", p)
	}
}

func taskOf(t *testing.T, ctx context.Context, c *client.Client, id string) api.TaskStatus {
	t.Helper()
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.TaskStats[0]
}

func peersByID(t *testing.T, ctx context.Context, c *client.Client) map[string]api.Peer {
	t.Helper()
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Peer{}
	for _, p := range peers {
		out[p.ID] = p
	}
	return out
}

// TestReplicas_DistrustedWorkerIsToldWhyAndTrustClearsIt: a worker
// outvoted three times is refused leases with an error that says why, its
// heartbeat answer says it is distrusted, and an operator's trust (the
// route behind client.TrustPeer) lets it lease again.
func TestReplicas_DistrustedWorkerIsToldWhyAndTrustClearsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, c, _ := replicaGrid(t, ctx, 4)
	for range 3 {
		liar, honest := leaseOne(t, ctx, c, "w2"), leaseOne(t, ctx, c, "w1")
		report(t, ctx, c, "w2", liar, "lie")
		report(t, ctx, c, "w1", honest, "truth")
		report(t, ctx, c, "w3", leaseOne(t, ctx, c, "w3"), "truth")
	}
	_, err := c.Lease(ctx, &api.LeaseRequest{Worker: "w2", Cores: 1, Max: 1})
	var apiErr *client.StatusError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusForbidden || !strings.Contains(err.Error(), "distrusted") {
		t.Fatalf("a distrusted worker's lease: %v", err)
	}
	hb, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w2", Cores: 1})
	if err != nil || !hb.Distrusted {
		t.Fatalf("heartbeat answer %+v, %v: want distrusted", hb, err)
	}
	if p := peersByID(t, ctx, c)["w2"]; !p.Distrusted || p.Outvoted != 3 {
		t.Fatalf("w2 listed %+v", p)
	}
	if err := c.TrustPeer(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	if err := c.TrustPeer(ctx, "nobody"); !errors.As(err, &apiErr) || apiErr.Code != http.StatusNotFound {
		t.Fatalf("trust of an unknown worker: %v", err)
	}
	if p := peersByID(t, ctx, c)["w2"]; p.Distrusted || p.Outvoted != 3 {
		t.Fatalf("w2 after trust: %+v", p)
	}
	leaseOne(t, ctx, c, "w2") // the fourth task
}
