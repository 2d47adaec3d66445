package server

import (
	"net/http"
	"sync"
	"time"

	compat "github.com/hashicorp/go-metrics/compat"

	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics: Prometheus metrics, through prometheus/client_golang. Every
// server answers for itself, never forwarding: its Raft state and its
// applied copy of the ledger (views' collectors), what it did as leader
// (leaderMetrics, counted where the leader does each thing: see the
// "metrics:" comments), and Raft's own timings (commit, FSM apply, append
// entries, ...), which hashicorp/raft reports through go-metrics and a
// process-wide sink turns into peergrid_raft_* summaries.

const leaderOnly = " Counted by this server process while it led; never moves on a follower."

// leaderMetrics count what this server did while it led, for the life of
// the process (a server that loses leadership keeps its counts, and they do
// not move again until it leads again).
type leaderMetrics struct {
	tasksLeased         prometheus.Counter
	completionsAccepted prometheus.Counter
	completionsFailed   prometheus.Counter
	reportsIgnored      prometheus.Counter
	leasesExpired       prometheus.Counter
	repairsPlanned      prometheus.Counter
	blobsCollected      prometheus.Counter
	peersMarkedDown     prometheus.Counter
	auditFailures       prometheus.Counter

	taskRun     prometheus.Histogram // run time of accepted task attempts
	leaseGrant  prometheus.Histogram // committing a lease that granted tasks
	reportApply prometheus.Histogram // committing a worker's report
}

func newLeaderMetrics() *leaderMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help + leaderOnly})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help + leaderOnly, Buckets: buckets})
	}
	return &leaderMetrics{
		tasksLeased:         counter("peergrid_leader_tasks_leased_total", "Tasks granted to workers."),
		completionsAccepted: counter("peergrid_leader_task_completions_accepted_total", "Task reports accepted by the ledger, successful or not."),
		completionsFailed:   counter("peergrid_leader_task_completions_failed_total", "Accepted task reports of a failed attempt (a subset of the accepted ones)."),
		reportsIgnored:      counter("peergrid_leader_task_reports_ignored_total", "Task reports the ledger ignored: late, for an old attempt or from another worker."),
		leasesExpired:       counter("peergrid_leader_leases_expired_total", "Task leases expired, past their deadline or because their worker went down."),
		repairsPlanned:      counter("peergrid_leader_repairs_planned_total", "Repair orders planned for blobs with lost shards."),
		blobsCollected:      counter("peergrid_leader_blobs_collected_total", "Blobs deleted by garbage collection."),
		peersMarkedDown:     counter("peergrid_leader_peers_marked_down_total", "Peers marked down after a silence of the worker TTL."),
		auditFailures:       counter("peergrid_leader_shard_audit_failures_total", "Shards whose holder failed the leader's audit challenge (then rebuilt elsewhere)."),
		taskRun: histogram("peergrid_leader_task_run_seconds",
			"Run time of task attempts whose reports the ledger accepted, as their workers measured it.",
			prometheus.ExponentialBucketsRange(0.001, 3600, 20)),
		leaseGrant: histogram("peergrid_leader_lease_grant_seconds",
			"Time to commit a lease that granted tasks, from proposing it to its grants applied.",
			prometheus.ExponentialBucketsRange(0.0005, 10, 16)),
		reportApply: histogram("peergrid_leader_report_seconds",
			"Time to commit a worker's report of finished tasks, from proposing it to its outcome applied.",
			prometheus.ExponentialBucketsRange(0.0005, 10, 16)),
	}
}

func (m *leaderMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tasksLeased, m.completionsAccepted, m.completionsFailed, m.reportsIgnored,
		m.leasesExpired, m.repairsPlanned, m.blobsCollected, m.peersMarkedDown, m.auditFailures, m.taskRun, m.leaseGrant, m.reportApply}
}

// countExpired adds the response of an ExpireLeases proposal (the number of
// leases it expired) to the counter.
func (m *leaderMetrics) countExpired(resp any) {
	if n, ok := resp.(int); ok && n > 0 {
		m.leasesExpired.Add(float64(n))
	}
}

// countReports adds a CompleteTasks command's outcome to the counters and
// the accepted attempts' run times to the histogram.
func (m *leaderMetrics) countReports(reports []api.Report, accepted []bool) {
	for i, ok := range accepted {
		switch {
		case !ok:
			m.reportsIgnored.Inc()
			continue
		case i < len(reports) && reports[i].Failed():
			m.completionsFailed.Inc()
		}
		m.completionsAccepted.Inc()
		if i < len(reports) {
			m.taskRun.Observe(reports[i].Duration.Seconds())
		}
	}
}

// metricsHandler serves this server's registry and Raft's go-metrics.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(views.NewInfoCollector(s.cfg.Store.ID), views.NewRaftCollector(s.store), views.NewLedgerCollector(s.store.FSM()))
	reg.MustRegister(s.metrics.collectors()...)
	gatherers := prometheus.Gatherers{reg}
	if raftReg, err := raftMetrics(); err == nil {
		gatherers = append(gatherers, raftReg)
	} else {
		s.log.Warn("raft metrics unavailable", "err", err)
	}
	return promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}, ErrorHandling: promhttp.ContinueOnError})
}

type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics", "err", v) }

// raftMetrics installs, once per process, the go-metrics sink through
// which hashicorp/raft's timings and counters reach Prometheus. go-metrics
// is process-wide: several servers in one process (tests, dev) share it.
// Names are snake_case (raft's keys are camelCase) and counters end in
// _total, as Prometheus's naming rules and promtool want.
var raftMetrics = sync.OnceValues(func() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Expiration: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	cfg := compat.DefaultConfig("peergrid")
	cfg.EnableHostname, cfg.EnableHostnameLabel, cfg.EnableRuntimeMetrics = false, false, false
	cfg.TimerGranularity = time.Millisecond
	if _, err := compat.NewGlobal(cfg, promNames{sink}); err != nil {
		return nil, err
	}
	return reg, nil
})
