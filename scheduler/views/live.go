package views

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// The live data behind the dashboard's charts (GET /ui/live, polled by
// dashboard/live.js): the grid's throughput and queue over the last hour,
// each worker's load and, for a job page, its task strip and failures.
//
// Throughput is kept in this server's memory only: a ring of samples of
// its applied ledger, taken every SampleEvery by Sampler, never
// replicated. A server that just started (or restarted) has no history;
// every server keeps its own.

const (
	// SampleEvery is how often the server samples throughput; an hour of
	// samples is kept.
	SampleEvery  = 10 * time.Second
	samplesKept  = int(time.Hour / SampleEvery)
	liveJobs     = 100  // newest jobs in a live update
	liveStrip    = 1000 // cells of a job's task strip at most
	liveFailures = 20   // failed tasks shown with their stderr
	stderrTail   = 2048 // bytes of a failed task's stderr shown
)

// sample is the grid's task counts at one time: Results counts the results
// (done or failed attempts) workers have had accepted, summed over every
// peer of the ledger, which only grows.
type sample struct {
	At                     time.Time
	Results                int
	Queued, Running, Peers int
}

// samples is a ring of the last samplesKept samples.
type samples struct {
	mu   sync.Mutex
	ring []sample // oldest first once full (from next)
	next int
}

func (s *samples) add(x sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < samplesKept {
		s.ring = append(s.ring, x)
		return
	}
	s.ring[s.next] = x
	s.next = (s.next + 1) % samplesKept
}

// all is every sample kept, oldest first.
func (s *samples) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clone(s.ring[s.next:]), s.ring[:s.next]...)
}

// current is the ledger's counts now.
func (d *Dashboard) current(now time.Time) sample {
	x := sample{At: now}
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		st := l.Stats()
		x.Queued, x.Running = st.Tasks[0], st.Tasks[1]
		x.Results = l.PeerResults()
	})
	return x
}

// Sample records the ledger's counts now in the throughput history.
func (d *Dashboard) Sample(now time.Time) { d.history.add(d.current(now)) }

// RunSampler samples every SampleEvery until ctx ends.
func (d *Dashboard) RunSampler(ctx context.Context) {
	d.Sample(time.Now())
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.Sample(now)
		}
	}
}

// livePoint is one point of the charts: results accepted per second over
// the interval that ends at T (0 for the first), and the tasks queued and
// leased at T.
type livePoint struct {
	T       int64   `json:"t"` // Unix milliseconds
	Rate    float64 `json:"rate"`
	Queued  int     `json:"queued"`
	Running int     `json:"running"`
}

// liveWorker is a worker's load. Busy is what its last heartbeat to this
// server said it was running (BusyFrom "heartbeat", on the leader), or
// else the leases the ledger gives it ("leases": it may hold more leases
// than it runs, prefetched); Util is Busy over Cores, capped at 1.
type liveWorker struct {
	ID       string  `json:"id"`
	State    string  `json:"state"`
	Cores    int     `json:"cores"`
	Busy     int     `json:"busy"`
	BusyFrom string  `json:"busy_from"`
	Leased   int     `json:"leased"`
	Util     float64 `json:"util"`
	Done     int     `json:"done"`
	Failed   int     `json:"failed"`
}

type liveJob struct {
	api.JobSummary
	Strip    [][4]int      `json:"strip"` // per cell: queued, leased, done, failed
	Failures []liveFailure `json:"failures"`
}

type liveFailure struct {
	Index    int    `json:"index"`
	Attempts int    `json:"attempts"`
	Worker   string `json:"worker"`
	Kind     string `json:"kind"`
	Error    string `json:"error"`
	ExitCode *int   `json:"exit_code"`
	Stderr   string `json:"stderr"` // its last stderrTail bytes
	Cut      bool   `json:"cut"`    // stderr was longer
}

type liveData struct {
	Now      int64            `json:"now"`
	Every    int              `json:"every_s"` // seconds between samples
	Series   []livePoint      `json:"series"`
	Totals   [4]int           `json:"totals"` // queued, leased, done, failed over all jobs
	Workers  []liveWorker     `json:"workers"`
	Jobs     []api.JobSummary `json:"jobs,omitempty"`
	JobTotal int              `json:"jobs_total"`
	Job      *liveJob         `json:"job,omitempty"`
}

// uiLive answers the live data; ?job=ID adds that job's, if the viewer may
// see it (404 otherwise).
func (d *Dashboard) uiLive(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	v := viewerOf(r)
	out := liveData{Now: now.UnixMilli(), Every: int(SampleEvery / time.Second)}
	out.Series = series(append(d.history.all(), d.current(now)))
	out.Workers = d.liveWorkers()
	id := r.URL.Query().Get("job")
	found := id == ""
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		out.Totals = l.Stats().Tasks
		out.Jobs, out.JobTotal = visibleJobs(l, v)
		out.Jobs = out.Jobs[:min(len(out.Jobs), liveJobs)]
		if id != "" && seesJob(l, v, id) {
			out.Job, found = jobLive(l, id), true
		}
	})
	if !found {
		http.Error(w, "dashboard: no job "+id+" you may see", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func seesJob(l *ledger.Ledger, v Viewer, id string) bool {
	_, ok := l.JobSpec(id)
	return ok && (v.seesAllJobs() || v.seesJobs() && l.OwnsJob(v.ID, id))
}

// series turns samples into chart points. Results only grow, but a peer
// the ledger forgets takes its counts along: such an interval shows 0, not
// a negative rate.
func series(xs []sample) []livePoint {
	out := make([]livePoint, len(xs))
	for i, x := range xs {
		out[i] = livePoint{T: x.At.UnixMilli(), Queued: x.Queued, Running: x.Running}
		if i == 0 {
			continue
		}
		if dt := x.At.Sub(xs[i-1].At).Seconds(); dt > 0 {
			out[i].Rate = max(0, float64(x.Results-xs[i-1].Results)/dt)
		}
	}
	return out
}

func (d *Dashboard) liveWorkers() []liveWorker {
	var out []liveWorker
	for _, p := range d.src.Peers() {
		if !slices.Contains(p.Roles, api.RoleWorker) {
			continue
		}
		lw := liveWorker{ID: p.ID, State: p.State, Cores: p.Cores, Leased: p.Leased, Busy: p.Leased, BusyFrom: "leases", Done: p.Done, Failed: p.Failed}
		if n, ok := d.src.ReportedRunning(p.ID); ok {
			lw.Busy, lw.BusyFrom = n, "heartbeat"
		}
		if p.Cores > 0 && p.State != api.PeerDown {
			lw.Util = min(1, float64(lw.Busy)/float64(p.Cores))
		}
		out = append(out, lw)
	}
	return out
}

func jobLive(l *ledger.Ledger, id string) *liveJob {
	sum, _ := l.JobSummary(id)
	return &liveJob{JobSummary: sum, Strip: l.TaskStrip(id, liveStrip), Failures: failuresOf(l, id)}
}

// failuresOf is a job's first liveFailures failed tasks with the tails of
// their stderr.
func failuresOf(l *ledger.Ledger, id string) []liveFailure {
	out := []liveFailure{}
	for _, t := range l.FailedTasks(id, liveFailures) {
		f := liveFailure{Index: t.Index, Attempts: t.Attempts, Worker: t.Worker, Kind: t.ErrorKind, Error: t.Error, ExitCode: t.ExitCode}
		f.Stderr, f.Cut = tail(t.Stderr, stderrTail)
		out = append(out, f)
	}
	return out
}

// tail is the last n bytes of b as text, and whether it was cut.
func tail(b []byte, n int) (string, bool) {
	if len(b) <= n {
		return string(b), false
	}
	return string(b[len(b)-n:]), true
}
