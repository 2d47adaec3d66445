package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/metricstest"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// scrape GETs base/metrics with the given request headers and returns the
// status, content type and body.
func scrape(t *testing.T, base string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := anyCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// scrapeParsed scrapes with the token as Prometheus sends it, parses the
// output strictly, and lints it as promtool check metrics does.
func scrapeParsed(t *testing.T, base, token string) *metricstest.Exposition {
	t.Helper()
	code, ctype, body := scrape(t, base, "Authorization", "Bearer "+token)
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain; version=0.0.4; charset=utf-8") {
		t.Fatalf("GET /metrics: %d %q\n%s", code, ctype, body)
	}
	metricstest.Lint(t, body)
	return metricstest.Parse(t, body)
}

func value(t *testing.T, e *metricstest.Exposition, name string, labels ...string) float64 {
	t.Helper()
	v, ok := e.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// checkRefused asserts /metrics answers 401 without the right token.
func checkRefused(t *testing.T, base, token string) {
	t.Helper()
	for _, h := range [][]string{
		nil,
		{"Authorization", "Bearer wrong-" + token},
		{"Authorization", "Basic " + token},
		{api.TokenHeader, token + "x"},
	} {
		if code, _, body := scrape(t, base, h...); code != http.StatusUnauthorized || strings.Contains(body, "peergrid_") {
			t.Errorf("GET /metrics with %q: %d, want 401 and no metrics\n%s", h, code, body)
		}
	}
	if code, _, _ := scrape(t, base, api.TokenHeader, token); code != http.StatusOK {
		t.Errorf("GET /metrics with the %s header: %d, want 200", api.TokenHeader, code)
	}
}

// failFirstRunner is echoRunner, except that task 0 fails every attempt
// (exit code 1).
type failFirstRunner struct{ echoRunner }

func (r failFirstRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	if len(req.Args) > 0 && req.Args[0] == "0" {
		return &wasm.Result{ExitCode: 1}, &wasm.TaskError{Kind: wasm.KindExit, Msg: "task exited with code 1"}
	}
	return r.echoRunner.Run(ctx, req)
}

// TestMetrics_DevGridJob runs jobs on a dev grid and checks /metrics
// against what they did: refused without the token; the ledger's job and
// task gauges and the leader's counters match the jobs.
func TestMetrics_DevGridJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 2, Worker: failFirstRunner{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	checkRefused(t, g.Addr, g.Token)

	e := scrapeParsed(t, g.Addr, g.Token)
	if v := value(t, e, "peergrid_ledger_tasks", "state", "done"); v != 0 {
		t.Fatalf("before any job: %v tasks done", v)
	}

	const n = 20
	c := g.Client()
	id := submitEcho(t, c, n) // 5 retries: task 0 fails 6 times
	sum, err := c.WaitJob(ctx, id, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != tasks.JobFailed || sum.Done != n-1 || sum.Failed != 1 {
		t.Fatalf("job %s: %+v", id, sum)
	}
	const attempts = 1 + 5 // of task 0, with submitEcho's retries
	// The handler counts a report after its commit, so the job may read
	// finished a moment before the counters move: poll for them.
	testcluster.Eventually(t, 10*time.Second, "the leader's counters to catch up", func() bool {
		e = scrapeParsed(t, g.Addr, g.Token)
		v, _ := e.Value("peergrid_leader_task_completions_accepted_total")
		return v >= n-1+attempts
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"peergrid_ledger_tasks", []string{"state", "done"}, n - 1},
		{"peergrid_ledger_tasks", []string{"state", "failed"}, 1},
		{"peergrid_ledger_tasks", []string{"state", "queued"}, 0},
		{"peergrid_ledger_tasks", []string{"state", "leased"}, 0},
		{"peergrid_ledger_leases", nil, 0},
		{"peergrid_ledger_jobs", []string{"state", "failed"}, 1},
		{"peergrid_ledger_jobs", []string{"state", "complete"}, 0},
		{"peergrid_ledger_jobs", []string{"state", "running"}, 0},
		{"peergrid_ledger_peers", []string{"role", "worker", "state", "alive"}, 1},
		{"peergrid_ledger_worker_cores", nil, 2},
		{"peergrid_leader_task_completions_accepted_total", nil, n - 1 + attempts},
		{"peergrid_leader_task_completions_failed_total", nil, attempts},
		{"peergrid_leader_leases_expired_total", nil, 0},
		{"peergrid_leader_peers_marked_down_total", nil, 0},
		{"peergrid_raft_leader", nil, 1},
		{"peergrid_raft_state", []string{"state", "leader"}, 1},
		{"peergrid_raft_state", []string{"state", "follower"}, 0},
		{"peergrid_raft_voters", nil, 1},
		{"peergrid_raft_servers", nil, 1},
		{"peergrid_server_info", []string{"id", "dev-server"}, 1},
	} {
		if got := value(t, e, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := value(t, e, "peergrid_leader_tasks_leased_total"); v < n-1+attempts {
		t.Errorf("%v tasks leased, want at least %d", v, n-1+attempts)
	}
	if v := value(t, e, "peergrid_ledger_inline_blobs"); v < 1 {
		t.Errorf("%v inline blobs, want the module at least", v)
	}
	applied, commit, last := value(t, e, "peergrid_raft_applied_index"), value(t, e, "peergrid_raft_commit_index"), value(t, e, "peergrid_raft_last_log_index")
	if applied < 1 || applied > commit || commit > last {
		t.Errorf("raft indexes: applied %v, commit %v, last %v", applied, commit, last)
	}
	if ti := g.Server.Store().Raft().AppliedIndex(); float64(ti) < applied {
		t.Errorf("scraped applied index %v ahead of raft's %d", applied, ti)
	}
	// Raft's own timings (go-metrics through the Prometheus sink) and the
	// leader's latency histograms, after a job.
	for _, name := range []string{"peergrid_raft_commit_time", "peergrid_raft_fsm_apply", "peergrid_raft_apply_total",
		"peergrid_leader_task_run_seconds", "peergrid_leader_lease_grant_seconds", "peergrid_leader_report_seconds"} {
		if v := value(t, e, name); v < 1 {
			t.Errorf("%s counted %v observations after a job, want some", name, v)
		}
	}
	if v := value(t, e, "peergrid_leader_task_run_seconds"); v != n-1+attempts {
		t.Errorf("task run time observed %v times, want once per accepted report (%d)", v, n-1+attempts)
	}
}

// TestMetrics_ClusterLeaderAndFollowers: on a 3-server group exactly one
// server reports itself leader, every server refuses a scrape without the
// token, and followers serve their own applied index and ledger (no
// forwarding to the leader).
func TestMetrics_ClusterLeaderAndFollowers(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	for _, node := range c.Nodes {
		checkRefused(t, node.HTTPAddr, testcluster.Token)
	}
	submitEcho(t, c.Client(c.Nodes...), 7)
	c.WaitConverged()
	// The index every server must reach: a barrier's on the leader, asked
	// again of the new leader if leadership moves under it (the tests'
	// short Raft timeouts under -race; it happened once).
	var target uint64
	testcluster.Eventually(t, 20*time.Second, "a barrier on the leader", func() bool {
		leader := c.Leader()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := leader.Server.Store().Barrier(ctx); err != nil {
			return false
		}
		target = leader.Server.Store().Raft().AppliedIndex()
		return true
	})

	// Leadership may move on a loaded machine with the tests' short
	// timeouts: retry until one round of scrapes agrees with the harness.
	testcluster.Eventually(t, 20*time.Second, "exactly one server reporting leader=1, every server caught up", func() bool {
		leader := c.Leader()
		var leaders []string
		for _, node := range c.Nodes {
			raftNode := node.Server.Store().Raft()
			before := raftNode.AppliedIndex()
			e := scrapeParsed(t, node.HTTPAddr, testcluster.Token)
			after := raftNode.AppliedIndex()
			applied := value(t, e, "peergrid_raft_applied_index")
			if applied < float64(before) || applied > float64(after) {
				t.Fatalf("%s: scraped applied index %v, raft's went %d..%d", node.ID, applied, before, after)
			}
			if applied < float64(target) {
				return false
			}
			if value(t, e, "peergrid_raft_leader") == 1 {
				leaders = append(leaders, node.ID)
				if value(t, e, "peergrid_raft_state", "state", "leader") != 1 {
					t.Fatalf("%s: leader=1 but raft_state{leader} is not 1", node.ID)
				}
			} else if value(t, e, "peergrid_raft_state", "state", "follower") != 1 {
				return false // a candidate, mid-election
			}
			for _, ck := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"peergrid_raft_voters", nil, 3},
				{"peergrid_raft_servers", nil, 3},
				{"peergrid_ledger_jobs", []string{"state", "queued"}, 1},
				{"peergrid_ledger_tasks", []string{"state", "queued"}, 7},
				{"peergrid_server_info", []string{"id", node.ID}, 1},
			} {
				if got := value(t, e, ck.name, ck.labels...); got != ck.want {
					t.Fatalf("%s: %s%v = %v, want %v", node.ID, ck.name, ck.labels, got, ck.want)
				}
			}
			if node != leader && value(t, e, "peergrid_leader_tasks_leased_total") != 0 {
				t.Fatalf("%s: a follower counted leases", node.ID)
			}
		}
		if len(leaders) != 1 || leaders[0] != leader.ID {
			t.Logf("leaders by /metrics: %v, by raft: %s; retrying", leaders, leader.ID)
			return false
		}
		return true
	})
}

// TestMetrics_DevGridHousekeepingCounters: the leader's housekeeping
// counters move when it marks a silent peer down and collects a garbage blob,
// and the ledger gauges follow.
func TestMetrics_DevGridHousekeepingCounters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 1, Worker: echoRunner{}, StoragePeers: 1,
		WorkerTTL: time.Second, GCInterval: 20 * time.Millisecond, GCGrace: time.Nanosecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	garbage := []byte("a blob no job uses and nobody pinned")
	if err := g.Client().PutBlob(ctx, storage.Hash(garbage), garbage); err != nil {
		t.Fatal(err)
	}
	g.Storage[0].Stop()
	var e *metricstest.Exposition
	testcluster.Eventually(t, 20*time.Second, "the stopped peer marked down and the blob collected", func() bool {
		e = scrapeParsed(t, g.Addr, g.Token)
		return value(t, e, "peergrid_leader_peers_marked_down_total") >= 1 && value(t, e, "peergrid_leader_blobs_collected_total") >= 1
	})
	// >= rather than ==: on a loaded machine the worker may miss a TTL too.
	if v := value(t, e, "peergrid_ledger_peers", "role", "storage", "state", "down"); v < 1 {
		t.Errorf("%v storage peers down in the ledger, want at least 1", v)
	}
	if v := value(t, e, "peergrid_ledger_inline_blobs"); v != 0 {
		t.Errorf("%v inline blobs after garbage collection, want 0", v)
	}
}
