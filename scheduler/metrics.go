package scheduler

import (
	"bytes"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// GET /metrics: Prometheus metrics in the text exposition format 0.0.4,
// written by hand (the format is a few lines of grammar, not worth a
// dependency). Every server answers for itself, never forwarding: its Raft
// state, its applied copy of the ledger, and what it did as leader. A scrape
// costs O(jobs + peers + blobs), never O(tasks): tasks are counted from the
// per-job counters the ledger keeps (the ones job summaries report). The
// ledger's read lock is held only while numbers are copied out; formatting
// happens after it is released.

// metricsContentType is the text exposition format's media type.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// leaderCounters count what this server did while it led, for the life of
// the process (monotonic; a server that loses leadership keeps its counts,
// and they do not move again until it leads again). Each is bumped where the
// leader does the thing: see the "metrics:" comments in server.go,
// http_workers.go, repair.go and http_blobs.go.
type leaderCounters struct {
	tasksLeased         atomic.Uint64 // tasks granted in lease responses
	completionsAccepted atomic.Uint64 // task reports the ledger accepted (done or a failed attempt)
	completionsFailed   atomic.Uint64 // accepted reports of a failed attempt
	reportsIgnored      atomic.Uint64 // reports the ledger ignored (late, stale attempt, other worker)
	leasesExpired       atomic.Uint64 // leases expired (past deadline or their worker down)
	repairsPlanned      atomic.Uint64 // repair orders created for a blob with lost shards
	blobsCollected      atomic.Uint64 // blobs deleted by garbage collection
	peersMarkedDown     atomic.Uint64 // peers marked down for silence
}

// countExpired adds the response of an ExpireLeases proposal (the number of
// leases it expired) to the counter.
func (c *leaderCounters) countExpired(resp any) {
	if n, ok := resp.(int); ok && n > 0 {
		c.leasesExpired.Add(uint64(n))
	}
}

// countReports adds a CompleteTasks command's outcome to the counters.
func (c *leaderCounters) countReports(reports []TaskReport, accepted []bool) {
	for i, ok := range accepted {
		switch {
		case !ok:
			c.reportsIgnored.Add(1)
		case i < len(reports) && reports[i].ErrorKind != "":
			c.completionsAccepted.Add(1)
			c.completionsFailed.Add(1)
		default:
			c.completionsAccepted.Add(1)
		}
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	body := s.metrics()
	w.Header().Set("Content-Type", metricsContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// metrics renders every family.
func (s *Server) metrics() []byte {
	var ls ledgerStats
	s.store.FSM().View(ls.collect) // numbers only under the read lock
	rs := collectRaft(s.store.Raft())
	var w metricWriter
	writeBuildInfo(&w, s.cfg.Store.ID)
	rs.write(&w)
	ls.write(&w)
	s.counters.write(&w)
	return w.buf.Bytes()
}

// buildInfo is the module version and Go version of this binary.
var buildInfo = sync.OnceValues(func() (version, goVersion string) {
	version = "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return version, runtime.Version()
})

func writeBuildInfo(w *metricWriter, id string) {
	version, goVersion := buildInfo()
	w.family("peergrid_build_info", "gauge", "Always 1; the labels name the peergrid version and the Go version it was built with.")
	w.sample("peergrid_build_info", 1, "version", version, "goversion", goVersion)
	w.family("peergrid_server_info", "gauge", "Always 1; id is this server's Raft server id.")
	w.sample("peergrid_server_info", 1, "id", id)
}

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
	rs := raftStats{state: raftStateName(r.State()), term: num("term"), lastIndex: r.LastIndex(),
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

func (rs *raftStats) write(w *metricWriter) {
	w.family("peergrid_raft_state", "gauge", "This server's Raft state: 1 for the state it is in, 0 for the others.")
	for _, st := range raftStates {
		w.sample("peergrid_raft_state", b2f(rs.state == st), "state", st)
	}
	w.gauge("peergrid_raft_leader", "1 if this server is the Raft leader, else 0.", b2f(rs.state == "leader"))
	w.gauge("peergrid_raft_term", "This server's current Raft term.", float64(rs.term))
	w.gauge("peergrid_raft_last_log_index", "Index of the last entry in this server's Raft log (or of its last snapshot if later).", float64(rs.lastIndex))
	w.gauge("peergrid_raft_commit_index", "Highest Raft index this server knows to be committed.", float64(rs.commit))
	w.gauge("peergrid_raft_applied_index", "Highest Raft index this server has applied to its ledger.", float64(rs.applied))
	w.gauge("peergrid_raft_last_snapshot_index", "Raft index of this server's last snapshot (0 if none).", float64(rs.snapshotIndex))
	w.gauge("peergrid_raft_voters", "Voters in the Raft configuration this server knows.", float64(rs.voters))
	w.gauge("peergrid_raft_servers", "Servers (voters and non-voters) in the Raft configuration this server knows.", float64(rs.servers))
}

// ledgerStats are the ledger's numbers, copied out under the read lock.
type ledgerStats struct {
	jobs          map[tasks.JobState]int
	tasks         [4]int // queued, leased, done, failed
	leases        int
	peers         map[[2]string]int // {role, state} -> peers
	workerCores   int
	inline        int
	inlineBytes   int64
	coded         int
	codedBytes    int64
	codedShards   int
	unplacedBlobs int
	pinnedBlobs   int
}

var (
	jobStates  = []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobComplete, tasks.JobFailed, tasks.JobCancelled}
	taskStates = []tasks.TaskState{tasks.TaskQueued, tasks.TaskLeased, tasks.TaskDone, tasks.TaskFailed}
	peerRoles  = []string{api.RoleServer, api.RoleWorker, api.RoleStorage}
	peerStates = []string{api.PeerAlive, api.PeerDraining, api.PeerDown}
)

// collect reads l in O(jobs + peers + blobs); it is run under View.
func (ls *ledgerStats) collect(l *Ledger) {
	ls.jobs = make(map[tasks.JobState]int, len(jobStates))
	for _, j := range l.order {
		// The counters job.summary reports: no task is visited.
		ls.jobs[j.state()]++
		ls.tasks[0] += j.nQueued
		ls.tasks[1] += j.nLeased
		ls.tasks[2] += j.nDone
		ls.tasks[3] += j.nFailed
	}
	ls.leases = len(l.leased)
	ls.peers = map[[2]string]int{}
	for _, p := range l.peers {
		if len(p.Roles) == 0 {
			ls.peers[[2]string{"none", p.State}]++
		}
		for _, r := range p.Roles {
			ls.peers[[2]string{r, p.State}]++
		}
		if p.isAliveWorker() {
			ls.workerCores += p.Cores
		}
	}
	ls.inline = len(l.blobs)
	for _, b := range l.blobs {
		ls.inlineBytes += int64(len(b))
	}
	ls.coded = len(l.manifests)
	for _, m := range l.manifests {
		ls.codedBytes += m.Size
		ls.codedShards += len(m.Segments) * (m.K + m.M)
	}
	ls.unplacedBlobs = len(l.byPeer.unplaced)
	for _, m := range l.meta {
		if m.Pinned {
			ls.pinnedBlobs++
		}
	}
}

const fromLedger = " From this server's applied copy of the ledger (a follower may lag the leader)."

func (ls *ledgerStats) write(w *metricWriter) {
	w.family("peergrid_ledger_jobs", "gauge", "Jobs by state."+fromLedger)
	for _, st := range jobStates {
		w.sample("peergrid_ledger_jobs", float64(ls.jobs[st]), "state", string(st))
	}
	w.family("peergrid_ledger_tasks", "gauge", "Tasks of all jobs by state (purged jobs excluded)."+fromLedger)
	for i, st := range taskStates {
		w.sample("peergrid_ledger_tasks", float64(ls.tasks[i]), "state", string(st))
	}
	w.gauge("peergrid_ledger_leases", "Task leases held now."+fromLedger, float64(ls.leases))

	w.family("peergrid_ledger_peers", "gauge", "Peers by role and state; a peer with several roles counts once under each."+fromLedger)
	keys := make([][2]string, 0, len(peerRoles)*len(peerStates)+len(ls.peers))
	for _, r := range peerRoles {
		for _, st := range peerStates {
			keys = append(keys, [2]string{r, st})
		}
	}
	for k := range ls.peers { // roles or states the lists above do not know
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		w.sample("peergrid_ledger_peers", float64(ls.peers[k]), "role", k[0], "state", k[1])
	}
	w.gauge("peergrid_ledger_worker_cores", "Cores offered by workers in state alive."+fromLedger, float64(ls.workerCores))

	w.gauge("peergrid_ledger_inline_blobs", "Blobs kept inline in the ledger."+fromLedger, float64(ls.inline))
	w.gauge("peergrid_ledger_inline_blob_bytes", "Bytes of the blobs kept inline in the ledger."+fromLedger, float64(ls.inlineBytes))
	w.gauge("peergrid_ledger_coded_blobs", "Erasure-coded blobs (with a manifest in the ledger)."+fromLedger, float64(ls.coded))
	w.gauge("peergrid_ledger_coded_blob_bytes", "Logical bytes of the erasure-coded blobs (before coding)."+fromLedger, float64(ls.codedBytes))
	w.gauge("peergrid_ledger_coded_shards", "Shards (data and parity, placed or not) of the erasure-coded blobs."+fromLedger, float64(ls.codedShards))
	w.gauge("peergrid_ledger_blobs_with_unplaced_shards", "Erasure-coded blobs with a shard placed on no peer."+fromLedger, float64(ls.unplacedBlobs))
	w.gauge("peergrid_ledger_pinned_blobs", "Blobs pinned against garbage collection."+fromLedger, float64(ls.pinnedBlobs))
}

const leaderOnly = " Counted by this server process while it led; never moves on a follower."

func (c *leaderCounters) write(w *metricWriter) {
	w.counter("peergrid_leader_tasks_leased_total", "Tasks granted to workers."+leaderOnly, float64(c.tasksLeased.Load()))
	w.counter("peergrid_leader_task_completions_accepted_total", "Task reports accepted by the ledger, successful or not."+leaderOnly, float64(c.completionsAccepted.Load()))
	w.counter("peergrid_leader_task_completions_failed_total", "Accepted task reports of a failed attempt (a subset of the accepted ones)."+leaderOnly, float64(c.completionsFailed.Load()))
	w.counter("peergrid_leader_task_reports_ignored_total", "Task reports the ledger ignored: late, for an old attempt or from another worker."+leaderOnly, float64(c.reportsIgnored.Load()))
	w.counter("peergrid_leader_leases_expired_total", "Task leases expired, past their deadline or because their worker went down."+leaderOnly, float64(c.leasesExpired.Load()))
	w.counter("peergrid_leader_repairs_planned_total", "Repair orders planned for blobs with lost shards."+leaderOnly, float64(c.repairsPlanned.Load()))
	w.counter("peergrid_leader_blobs_collected_total", "Blobs deleted by garbage collection."+leaderOnly, float64(c.blobsCollected.Load()))
	w.counter("peergrid_leader_peers_marked_down_total", "Peers marked down after a silence of the worker TTL."+leaderOnly, float64(c.peersMarkedDown.Load()))
}

// metricWriter writes the Prometheus text exposition format, version 0.0.4.
// Callers write a family's HELP and TYPE once, then its samples.
type metricWriter struct {
	buf bytes.Buffer
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// escapeLabelValue escapes a label value as the format requires: backslash,
// double quote and line feed.
func escapeLabelValue(v string) string { return labelEscaper.Replace(v) }

// family starts a metric family: its HELP (backslash and line feed escaped)
// and TYPE lines.
func (w *metricWriter) family(name, typ, help string) {
	w.buf.WriteString("# HELP ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	w.buf.WriteString(helpEscaper.Replace(help))
	w.buf.WriteString("\n# TYPE ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	w.buf.WriteString(typ)
	w.buf.WriteByte('\n')
}

// sample writes one sample; labels are name, value pairs.
func (w *metricWriter) sample(name string, v float64, labels ...string) {
	w.buf.WriteString(name)
	if len(labels) > 0 {
		w.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.buf.WriteString(labels[i])
			w.buf.WriteString(`="`)
			w.buf.WriteString(escapeLabelValue(labels[i+1]))
			w.buf.WriteByte('"')
		}
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(formatValue(v))
	w.buf.WriteByte('\n')
}

// gauge and counter write a family of one unlabelled sample.
func (w *metricWriter) gauge(name, help string, v float64) {
	w.family(name, "gauge", help)
	w.sample(name, v)
}

func (w *metricWriter) counter(name, help string, v float64) {
	w.family(name, "counter", help)
	w.sample(name, v)
}

// formatValue writes integers without an exponent and the special values as
// the format spells them.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
