package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
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

// plainGrid is a server with no worker of its own and a job of n tasks
// without replicas, which the test leases and reports as worker w1.
func plainGrid(t *testing.T, ctx context.Context, n int) (*devgrid.Grid, *client.Client, string) {
	t.Helper()
	// The test's calls speak for worker "w1", which never heartbeats: a
	// worker TTL longer than any test keeps its leases from being taken
	// back midway (one run under -race on a loaded machine took 25 s, past
	// the default 15 s, and saw its held lease requeued).
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: 10 * time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "plain", ModuleHash: storage.Hash(mod), Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	return g, c, id
}

func doneReport(a api.Assignment, stdout string) api.Report {
	return api.Report{TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt},
		Result: tasks.Result{Stdout: []byte(stdout), Duration: time.Millisecond, Engine: "wazero"}}
}

func jobCounts(t *testing.T, ctx context.Context, c *client.Client, id string) (done, leased, queued int) {
	t.Helper()
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Done, st.Leased, st.Queued
}

// TestLeaseWithReports_AppliesTheReportsThenLeases: a lease carrying a
// worker's finished reports commits them (each answered, in order, as
// POST /v1/report answers: one for a task the worker does not hold is not
// accepted) and then leases new tasks in the same call; the results are
// there to read.
func TestLeaseWithReports_AppliesTheReportsThenLeases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, c, id := plainGrid(t, ctx, 5)
	got, err := c.Lease(ctx, &api.LeaseRequest{Worker: "w1", Cores: 2, Max: 2})
	if err != nil || len(got) != 2 {
		t.Fatalf("first lease: %v, %v", got, err)
	}
	notHeld := api.Report{TaskRef: api.TaskRef{Job: id, Index: 4, Attempt: 1}, Result: tasks.Result{Stdout: []byte("x")}}
	resp, err := c.LeaseWithReports(ctx, &api.LeaseRequest{Worker: "w1", Cores: 2, Max: 2,
		Reports: []api.Report{doneReport(got[0], "zero\n"), notHeld, doneReport(got[1], "one\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Accepted, []bool{true, false, true}) || len(resp.Tasks) != 2 {
		t.Fatalf("answer: accepted %v, %d tasks; want [true false true] and 2 tasks", resp.Accepted, len(resp.Tasks))
	}
	for _, a := range resp.Tasks {
		if a.Index == got[0].Index || a.Index == got[1].Index {
			t.Fatalf("leased task %d again, which the same call reported done", a.Index)
		}
	}
	if done, leased, queued := jobCounts(t, ctx, c, id); done != 2 || leased != 2 || queued != 1 {
		t.Fatalf("job after the call: %d done, %d leased, %d queued; want 2, 2, 1", done, leased, queued)
	}
	res, err := c.TaskResult(ctx, id, got[1].Index)
	if err != nil || string(res.Stdout) != "one\n" {
		t.Fatalf("result of task %d: %+v, %v", got[1].Index, res, err)
	}
}

// TestLeaseWithReports_RefusedReportsApplyNothing: a lease whose reports
// are refused (one bringing its own hash, one over the inline limit, one
// naming a stdout blob the grid lacks) is answered with an error that
// names the fault, and neither reports nor leases anything.
func TestLeaseWithReports_RefusedReportsApplyNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, c, id := plainGrid(t, ctx, 4)
	got, err := c.Lease(ctx, &api.LeaseRequest{Worker: "w1", Cores: 1, Max: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("first lease: %v, %v", got, err)
	}
	a := got[0]
	hashed, _ := json.Marshal(map[string]any{"worker": "w1", "max": 1, "reports": []map[string]any{{
		"job": a.Job, "index": a.Index, "attempt": a.Attempt, "exit_code": 0, "stdout": []byte("0\n"), "duration_ns": 1, "hash": "abc"}}})
	big := doneReport(a, strings.Repeat("x", storage.MaxInline+1))
	blob := doneReport(a, "")
	blob.StdoutBlob = strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		body []byte
		code int
		says string
	}{
		{"own hash", hashed, http.StatusBadRequest, `unknown field \"hash\"`},
		{"too large", mustJSON(t, api.LeaseRequest{Worker: "w1", Max: 1, Reports: []api.Report{big}}), http.StatusRequestEntityTooLarge, "output of job"},
		{"missing blob", mustJSON(t, api.LeaseRequest{Worker: "w1", Max: 1, Reports: []api.Report{blob}}), http.StatusBadRequest, "stdout blob"},
	} {
		code, msg := postLease(t, ctx, g, c, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.says) {
			t.Fatalf("%s: %d %s, want %d naming %q", tc.name, code, msg, tc.code, tc.says)
		}
		if done, leased, _ := jobCounts(t, ctx, c, id); done != 0 || leased != 1 {
			t.Fatalf("%s: after a refused call %d done, %d leased; want 0 and the 1 lease held", tc.name, done, leased)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postLease sends a raw lease body with the grid's token and returns the
// status and body of the answer.
func postLease(t *testing.T, ctx context.Context, g *devgrid.Grid, c *client.Client, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.Addr+"/v1/lease", bytes.NewReader(body))
	req.Header.Set(api.TokenHeader, g.Token)
	resp, err := c.HTTP.Do(req) // the client pinned to the grid's CA
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// TestLeaseWithReports_DistrustedWorkerHasItsReportsAnswered: a
// distrusted worker is leased nothing, but the reports its lease carries
// are still applied and answered as POST /v1/report answers them (its
// leases were handed back when it was distrusted, so not accepted): 200,
// no tasks. Without reports its lease is refused (403).
func TestLeaseWithReports_DistrustedWorkerHasItsReportsAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, c, _ := replicaGrid(t, ctx, 4)
	for range 2 {
		liar, honest := leaseOne(t, ctx, c, "w2"), leaseOne(t, ctx, c, "w1")
		report(t, ctx, c, "w2", liar, "lie")
		report(t, ctx, c, "w1", honest, "truth")
		report(t, ctx, c, "w3", leaseOne(t, ctx, c, "w3"), "truth")
	}
	liar, honest := leaseOne(t, ctx, c, "w2"), leaseOne(t, ctx, c, "w1")
	report(t, ctx, c, "w2", liar, "lie")
	report(t, ctx, c, "w1", honest, "truth")
	decider := leaseOne(t, ctx, c, "w3")
	held := leaseOne(t, ctx, c, "w2") // a replica of the fourth task, still held when the third outvote lands
	report(t, ctx, c, "w3", decider, "truth")
	if p := peersByID(t, ctx, c)["w2"]; !p.Distrusted {
		t.Fatalf("w2 after three outvotes: %+v", p)
	}
	rep := doneReport(held, "truth")
	resp, err := c.LeaseWithReports(ctx, &api.LeaseRequest{Worker: "w2", Cores: 1, Max: 1, Reports: []api.Report{rep}})
	if err != nil || !reflect.DeepEqual(resp.Accepted, []bool{false}) || len(resp.Tasks) != 0 {
		t.Fatalf("distrusted w2's lease with a report: %+v, %v; want its report answered (not accepted) and no tasks", resp, err)
	}
	if acc, err := c.Report(ctx, &api.ReportRequest{Worker: "w2", Reports: []api.Report{rep}}); err != nil || !reflect.DeepEqual(acc, resp.Accepted) {
		t.Fatalf("POST /v1/report answered %v, %v; the lease answered %v", acc, err, resp.Accepted)
	}
	_, err = c.LeaseWithReports(ctx, &api.LeaseRequest{Worker: "w2", Cores: 1, Max: 1})
	var apiErr *client.StatusError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusForbidden {
		t.Fatalf("distrusted w2's lease without reports: %v, want 403", err)
	}
}

// TestLease_OldWorkersReportThenLease: a worker that predates reports on a
// lease (report, then lease, as before) is served as before, and a lease
// without reports is answered without an accepted list, so an old
// worker's answer holds nothing it does not know.
func TestLease_OldWorkersReportThenLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, c, id := plainGrid(t, ctx, 3)
	a := leaseOne(t, ctx, c, "w1")
	if acc, err := c.Report(ctx, &api.ReportRequest{Worker: "w1", Reports: []api.Report{doneReport(a, "0\n")}}); err != nil || !reflect.DeepEqual(acc, []bool{true}) {
		t.Fatalf("report: %v, %v", acc, err)
	}
	code, body := postLease(t, ctx, g, c, mustJSON(t, map[string]any{"worker": "w1", "max": 1}))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); code != http.StatusOK || err != nil || len(raw) != 1 || raw["tasks"] == nil {
		t.Fatalf("an old worker's lease: %d %s, want 200 with tasks only", code, body)
	}
	if done, leased, _ := jobCounts(t, ctx, c, id); done != 1 || leased != 1 {
		t.Fatalf("job: %d done, %d leased; want 1 and 1", done, leased)
	}
}
