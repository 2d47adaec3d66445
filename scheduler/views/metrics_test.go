package views

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/metricstest"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/ledger/ledgertest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

var testModule = []byte("\x00asm\x01\x00\x00\x00")

// render gathers the collectors and writes them in the text format.
func render(tb testing.TB, cs ...prometheus.Collector) string {
	tb.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.String()
}

func submit(tb testing.TB, f *ledger.FSM, id string, n int) {
	tb.Helper()
	spec := tasks.JobSpec{Name: id, ModuleHash: storage.Hash(testModule), Tasks: n, Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := ledgertest.Apply(tb, f, &ledger.SubmitJobCommand{ID: id, Spec: spec, Now: 2}); resp != id {
		tb.Fatalf("submit %s: %v", id, resp)
	}
}

// TestMetrics_LedgerCollectorFromCounters: the ledger's gauges say what the
// ledger holds, counted from the per-job counters, and lint clean.
func TestMetrics_LedgerCollectorFromCounters(t *testing.T) {
	f := ledger.NewFSM()
	ledgertest.Apply(t, f, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule, Now: 1})
	ledgertest.Apply(t, f, &ledger.UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker, api.RoleStorage}, Cores: 4, State: api.PeerAlive, Now: 1})
	ledgertest.Apply(t, f, &ledger.UpsertPeerCommand{ID: "w2", Roles: []string{api.RoleWorker}, Cores: 8, State: api.PeerDown, Now: 1})
	submit(t, f, "j1", 3)
	grants, _ := ledgertest.Apply(t, f, &ledger.LeaseTasksCommand{Worker: "w1", Max: 3, Now: 3}).([]ledger.Grant)
	if len(grants) != 3 {
		t.Fatalf("grants %v", grants)
	}
	ledgertest.Apply(t, f, &ledger.CompleteTasksCommand{Worker: "w1", Now: 4, Reports: []api.Report{
		{TaskRef: grants[0].Ref()}, {TaskRef: grants[1].Ref(), Result: tasks.Result{ErrorKind: "trap"}}, // no retries: failed
	}})
	submit(t, f, "j2", 2)
	body := render(t, NewLedgerCollector(f))
	metricstest.Lint(t, body)
	e := metricstest.Parse(t, body)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"peergrid_ledger_jobs", []string{"state", "running"}, 1},
		{"peergrid_ledger_jobs", []string{"state", "queued"}, 1},
		{"peergrid_ledger_jobs", []string{"state", "complete"}, 0},
		{"peergrid_ledger_tasks", []string{"state", "queued"}, 2},
		{"peergrid_ledger_tasks", []string{"state", "leased"}, 1},
		{"peergrid_ledger_tasks", []string{"state", "done"}, 1},
		{"peergrid_ledger_tasks", []string{"state", "failed"}, 1},
		{"peergrid_ledger_leases", nil, 1},
		{"peergrid_ledger_peers", []string{"role", "worker", "state", "alive"}, 1},
		{"peergrid_ledger_peers", []string{"role", "worker", "state", "down"}, 1},
		{"peergrid_ledger_peers", []string{"role", "storage", "state", "alive"}, 1},
		{"peergrid_ledger_peers", []string{"role", "server", "state", "alive"}, 0},
		{"peergrid_ledger_peers", []string{"role", "storage", "state", "draining"}, 0},
		{"peergrid_ledger_worker_cores", nil, 4},
		{"peergrid_ledger_inline_blobs", nil, 1},
		{"peergrid_ledger_inline_blob_bytes", nil, float64(len(testModule))},
		{"peergrid_ledger_coded_blobs", nil, 0},
		{"peergrid_ledger_blobs_with_unplaced_shards", nil, 0},
	} {
		if got, ok := e.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// BenchmarkMetricsScrape measures a scrape of the ledger's gauges: the
// read-locked copy of its numbers (ledger.Stats) and the whole gather and
// render, on 100k erasure-coded blobs over 50 peers and on 1,000 jobs of
// 200 tasks. Stats visits no task, so the jobs' size does not matter, only
// their number.
//
//	go test -run '^$' -bench MetricsScrape -benchmem ./scheduler/views/
func BenchmarkMetricsScrape(b *testing.B) {
	blobs := ledgertest.BenchLedger(b, 50, 100_000)
	jobs := ledger.NewFSM()
	ledgertest.Apply(b, jobs, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule, Now: 1})
	r := rand.New(rand.NewPCG(3, 4))
	for j := range 1000 {
		submit(b, jobs, fmt.Sprintf("j-%04d", j), 200)
		ledgertest.Apply(b, jobs, &ledger.LeaseTasksCommand{Worker: "w", Max: r.IntN(200), Now: 3})
	}
	for _, c := range []struct {
		name string
		f    *ledger.FSM
	}{{"blobs-100k", blobs}, {"jobs-1k-tasks-200k", jobs}} {
		b.Run(c.name+"/stats", func(b *testing.B) {
			for b.Loop() {
				c.f.View(func(l *ledger.Ledger) { _ = l.Stats() })
			}
		})
		b.Run(c.name+"/render", func(b *testing.B) {
			col := NewLedgerCollector(c.f)
			for b.Loop() {
				render(b, col)
			}
		})
	}
}
