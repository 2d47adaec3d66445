package views

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/tasks"
	"github.com/prometheus/client_golang/prometheus"
)

// The Prometheus collectors of a server's own state: its Raft group as it
// sees it and its applied copy of the ledger. Each scrape reads them afresh;
// the ledger's read lock is held only while ledger.Stats copies the numbers
// out, in O(jobs + peers + blobs), never O(tasks). What the server does as
// leader (counters, latencies) it counts itself (scheduler/server).

// NewInfoCollector exports peergrid_build_info and peergrid_server_info.
func NewInfoCollector(serverID string) prometheus.Collector {
	version, goVersion := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "peergrid_build_info",
		Help:        "Always 1; the labels name the peergrid version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion}})
	build.Set(1)
	server := prometheus.NewGauge(prometheus.GaugeOpts{Name: "peergrid_server_info",
		Help: "Always 1; id is this server's Raft server id.", ConstLabels: prometheus.Labels{"id": serverID}})
	server.Set(1)
	return collectors{build, server}
}

type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// buildInfo is the module version and Go version of this binary.
var buildInfo = sync.OnceValues(func() (version, goVersion string) {
	version = "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return version, runtime.Version()
})

// raftStats is this server's view of its Raft group.
type raftStats struct {
	state                                           string
	term, lastIndex, commit, applied, snapshotIndex uint64
	voters, servers                                 int
}

var raftStates = []string{"follower", "candidate", "leader", "shutdown"}

func collectRaft(r *raft.Raft) raftStats {
	st := r.Stats() // one consistent-enough read of the numbers raft keeps
	num := func(k string) uint64 { n, _ := strconv.ParseUint(st[k], 10, 64); return n }
	rs := raftStats{state: store.StateName(r.State()), term: num("term"), lastIndex: r.LastIndex(),
		commit: num("commit_index"), applied: num("applied_index"), snapshotIndex: num("last_snapshot_index")}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			rs.servers++
			if srv.Suffrage == raft.Voter {
				rs.voters++
			}
		}
	}
	return rs
}

// gaugeDesc is an unlabelled or labelled gauge family's description.
func gaugeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

var raftDescs = struct {
	state, leader, term, lastIndex, commit, applied, snapshot, voters, servers *prometheus.Desc
}{
	state:     gaugeDesc("peergrid_raft_state", "This server's Raft state: 1 for the state it is in, 0 for the others.", "state"),
	leader:    gaugeDesc("peergrid_raft_leader", "1 if this server is the Raft leader, else 0."),
	term:      gaugeDesc("peergrid_raft_term", "This server's current Raft term."),
	lastIndex: gaugeDesc("peergrid_raft_last_log_index", "Index of the last entry in this server's Raft log (or of its last snapshot if later)."),
	commit:    gaugeDesc("peergrid_raft_commit_index", "Highest Raft index this server knows to be committed."),
	applied:   gaugeDesc("peergrid_raft_applied_index", "Highest Raft index this server has applied to its ledger."),
	snapshot:  gaugeDesc("peergrid_raft_last_snapshot_index", "Raft index of this server's last snapshot (0 if none)."),
	voters:    gaugeDesc("peergrid_raft_voters", "Voters in the Raft configuration this server knows."),
	servers:   gaugeDesc("peergrid_raft_servers", "Servers (voters and non-voters) in the Raft configuration this server knows."),
}

// RaftCollector exports this server's Raft state as peergrid_raft_* gauges.
type RaftCollector struct{ st *store.Store }

// NewRaftCollector collects st's Raft state on every scrape.
func NewRaftCollector(st *store.Store) *RaftCollector { return &RaftCollector{st: st} }

// Describe implements prometheus.Collector.
func (c *RaftCollector) Describe(ch chan<- *prometheus.Desc) {
	d := raftDescs
	for _, desc := range []*prometheus.Desc{d.state, d.leader, d.term, d.lastIndex, d.commit, d.applied, d.snapshot, d.voters, d.servers} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *RaftCollector) Collect(ch chan<- prometheus.Metric) {
	rs, d := collectRaft(c.st.Raft()), raftDescs
	for _, st := range raftStates {
		gauge(ch, d.state, b2f(rs.state == st), st)
	}
	gauge(ch, d.leader, b2f(rs.state == "leader"))
	gauge(ch, d.term, float64(rs.term))
	gauge(ch, d.lastIndex, float64(rs.lastIndex))
	gauge(ch, d.commit, float64(rs.commit))
	gauge(ch, d.applied, float64(rs.applied))
	gauge(ch, d.snapshot, float64(rs.snapshotIndex))
	gauge(ch, d.voters, float64(rs.voters))
	gauge(ch, d.servers, float64(rs.servers))
}

const fromLedger = " From this server's applied copy of the ledger (a follower may lag the leader)."

var ledgerDescs = struct {
	jobs, tasks, leases, peers, cores, inline, inlineBytes, coded, codedBytes, codedShards, unplaced, pinned *prometheus.Desc
}{
	jobs:        gaugeDesc("peergrid_ledger_jobs", "Jobs by state."+fromLedger, "state"),
	tasks:       gaugeDesc("peergrid_ledger_tasks", "Tasks of all jobs by state (purged jobs excluded)."+fromLedger, "state"),
	leases:      gaugeDesc("peergrid_ledger_leases", "Task leases held now."+fromLedger),
	peers:       gaugeDesc("peergrid_ledger_peers", "Peers by role and state; a peer with several roles counts once under each."+fromLedger, "role", "state"),
	cores:       gaugeDesc("peergrid_ledger_worker_cores", "Cores offered by workers in state alive."+fromLedger),
	inline:      gaugeDesc("peergrid_ledger_inline_blobs", "Blobs kept inline in the ledger."+fromLedger),
	inlineBytes: gaugeDesc("peergrid_ledger_inline_blob_bytes", "Bytes of the blobs kept inline in the ledger."+fromLedger),
	coded:       gaugeDesc("peergrid_ledger_coded_blobs", "Erasure-coded blobs (with a manifest in the ledger)."+fromLedger),
	codedBytes:  gaugeDesc("peergrid_ledger_coded_blob_bytes", "Logical bytes of the erasure-coded blobs (before coding)."+fromLedger),
	codedShards: gaugeDesc("peergrid_ledger_coded_shards", "Shards (data and parity, placed or not) of the erasure-coded blobs."+fromLedger),
	unplaced:    gaugeDesc("peergrid_ledger_blobs_with_unplaced_shards", "Erasure-coded blobs with a shard placed on no peer."+fromLedger),
	pinned:      gaugeDesc("peergrid_ledger_pinned_blobs", "Blobs pinned against garbage collection."+fromLedger),
}

var (
	jobStates  = []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobComplete, tasks.JobFailed, tasks.JobCancelled}
	taskStates = []tasks.TaskState{tasks.TaskQueued, tasks.TaskLeased, tasks.TaskDone, tasks.TaskFailed}
	peerRoles  = []string{api.RoleServer, api.RoleWorker, api.RoleStorage}
	peerStates = []string{api.PeerAlive, api.PeerDraining, api.PeerDown}
)

// LedgerCollector exports the server's applied ledger as peergrid_ledger_* gauges.
type LedgerCollector struct{ fsm *ledger.FSM }

// NewLedgerCollector collects fsm's numbers on every scrape.
func NewLedgerCollector(fsm *ledger.FSM) *LedgerCollector { return &LedgerCollector{fsm: fsm} }

// Describe implements prometheus.Collector.
func (c *LedgerCollector) Describe(ch chan<- *prometheus.Desc) {
	d := ledgerDescs
	for _, desc := range []*prometheus.Desc{d.jobs, d.tasks, d.leases, d.peers, d.cores, d.inline, d.inlineBytes,
		d.coded, d.codedBytes, d.codedShards, d.unplaced, d.pinned} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector: numbers are copied out under the
// read lock and turned into metrics after it is released.
func (c *LedgerCollector) Collect(ch chan<- prometheus.Metric) {
	var st ledger.Stats
	c.fsm.View(func(l *ledger.Ledger) { st = l.Stats() })
	d := ledgerDescs
	for _, s := range jobStates {
		gauge(ch, d.jobs, float64(st.Jobs[s]), string(s))
	}
	for i, s := range taskStates {
		gauge(ch, d.tasks, float64(st.Tasks[i]), string(s))
	}
	gauge(ch, d.leases, float64(st.Leases))
	for _, k := range peerKeys(st.Peers) {
		gauge(ch, d.peers, float64(st.Peers[k]), k[0], k[1])
	}
	gauge(ch, d.cores, float64(st.WorkerCores))
	gauge(ch, d.inline, float64(st.Inline))
	gauge(ch, d.inlineBytes, float64(st.InlineBytes))
	gauge(ch, d.coded, float64(st.Coded))
	gauge(ch, d.codedBytes, float64(st.CodedBytes))
	gauge(ch, d.codedShards, float64(st.CodedShards))
	gauge(ch, d.unplaced, float64(st.UnplacedBlobs))
	gauge(ch, d.pinned, float64(st.PinnedBlobs))
}

// peerKeys are every {role, state} the lists above know (zero if no peer is
// in it), plus any other the ledger has.
func peerKeys(counts map[[2]string]int) [][2]string {
	var keys [][2]string
	seen := map[[2]string]bool{}
	for _, r := range peerRoles {
		for _, st := range peerStates {
			keys = append(keys, [2]string{r, st})
			seen[[2]string{r, st}] = true
		}
	}
	for k := range counts {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
