package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// problems collects what a run's checks found wrong.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// finalChecks runs after the schedule, with the network healed and every
// process running: it waits for the grid to finish its work and checks the
// grid's invariants (every job there, every task done once and byte-right,
// every acknowledged blob readable, every server holding the same ledger,
// every worker alive), then the history's: calls within the bound with
// clear errors, linearizable job and blob records, no healthy worker
// marked down, progress soon after every new leader.
func (g *grid) finalChecks(h *history, w *workload) problems {
	var p problems
	g.leader()
	g.checkWorkersAlive(&p)
	cl := g.newClient()
	jobs := g.findJobs(h, w, cl, &p)
	g.waitJobsFinished(cl, jobs, &p)
	g.checkResults(w, cl, jobs, &p)
	g.checkBlobs(w, cl, &p)
	g.checkConverged(&p)
	ops, events, samples := h.snapshot()
	checkCalls(ops, &p)
	p = append(p, checkLinearizable(ops, g.dir)...)
	checkHealthyNeverDown(events, samples, g.ttl+3*time.Second, &p)
	checkProgressAfterNewLeader(events, samples, 5*time.Second, &p)
	return p
}

// checkWorkersAlive: once healed, every worker is alive again.
func (g *grid) checkWorkersAlive(p *problems) {
	limit := 3*g.ttl + 10*time.Second
	var last map[string]string
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var peers []api.Peer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := staleGet(ctx, g.leader(), "/v1/peers", &peers)
		cancel()
		if err != nil {
			continue
		}
		last = map[string]string{}
		alive := 0
		for _, w := range g.workers {
			for _, pe := range peers {
				if pe.ID == w.name {
					last[w.name] = pe.State
					if pe.State == api.PeerAlive {
						alive++
					}
				}
			}
		}
		if alive == len(g.workers) {
			return
		}
	}
	p.addf("workers not all alive %s after the heal: %v", limit, last)
}

// findJobs lists the grid's jobs and matches them to the submits: every
// acknowledged submit's job is there, a submit whose answer was lost made
// at most one job (found by its name), no name made two.
func (g *grid) findJobs(h *history, w *workload, cl *gridClient, p *problems) []*jobRef {
	var listed []api.JobSummary
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		listed, err = cl.Jobs(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		p.addf("listing the jobs after the heal: %v", err)
		return nil
	}
	byName := map[string][]api.JobSummary{}
	for _, j := range listed {
		byName[j.Name] = append(byName[j.Name], j)
	}
	refs, _ := w.snapshot()
	var out []*jobRef
	for _, j := range refs {
		found := byName[j.name]
		switch {
		case len(found) > 1:
			p.addf("job %s was submitted once and created %d times", j.name, len(found))
		case len(found) == 0 && j.id != "":
			p.addf("job %s (%s) was acknowledged and is lost", j.id, j.name)
		case len(found) == 0: // a lost answer, and nothing was created
		case j.id != "" && found[0].ID != j.id:
			p.addf("job %s was acknowledged as %s and is listed as %s", j.name, j.id, found[0].ID)
		default:
			if j.id == "" {
				j.id = found[0].ID
				h.setKey(j.submitOp, j.id)
			}
			out = append(out, j)
		}
	}
	return out
}

// waitJobsFinished waits for every job to finish.
func (g *grid) waitJobsFinished(cl *gridClient, jobs []*jobRef, p *problems) {
	limit := 2 * time.Minute
	deadline := time.Now().Add(limit)
	for _, j := range jobs {
		var last *api.JobSummary
		var err error
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			last, err = cl.JobSummary(ctx, j.id)
			cancel()
			if err == nil && last.State.Finished() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || !last.State.Finished() {
			p.addf("job %s not finished %s after the heal: %+v %v", j.id, limit, last, err)
			return
		}
	}
}

// checkResults: every task of every job done once with the right bytes
// (tasks of a cancelled job may have failed as cancelled), and the ledger
// counts as many accepted completions as there are done tasks.
func (g *grid) checkResults(w *workload, cl *gridClient, jobs []*jobRef, p *problems) {
	done := 0
	for _, j := range jobs {
		cancelled := w.statusOf(checkClient, cl, "all", j).State == tasks.JobCancelled
		rs := w.resultsOf(checkClient, cl, "all", j)
		if len(rs) != j.tasks {
			p.addf("job %s: %d results for %d tasks", j.id, len(rs), j.tasks)
			continue
		}
		for i, r := range rs {
			switch {
			case r.State == tasks.TaskDone && string(r.Stdout) == echoOf(j.name, i):
				done++
			case r.State == tasks.TaskDone:
				p.addf("job %s task %d: wrote %q, want %q", j.id, i, r.Stdout, echoOf(j.name, i))
			case r.State == tasks.TaskFailed && cancelled && r.ErrorKind == "cancelled":
			default:
				p.addf("job %s task %d: %s after %d attempts (%s: %s)", j.id, i, r.State, r.Attempts, r.ErrorKind, r.Error)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peers, err := cl.Peers(ctx)
	if err != nil {
		p.addf("peers: %v", err)
		return
	}
	accepted := 0
	for _, pe := range peers {
		accepted += pe.Done
	}
	if accepted != done {
		p.addf("the ledger accepted %d completions for %d done tasks: some task counted twice", accepted, done)
	}
}

// checkBlobs: every blob whose put was acknowledged reads back byte for
// byte; one whose put's answer was lost is either there, right, or absent.
func (g *grid) checkBlobs(w *workload, cl *gridClient, p *problems) {
	_, blobs := w.snapshot()
	for _, b := range blobs {
		o := w.getBlob(checkClient, cl, "all", b)
		switch {
		case o.Wrong != "":
			p.addf("blob %s: %s", b.hash, o.Wrong)
		case b.acked && o.Outcome != outOK:
			p.addf("blob %s was acknowledged and reads as %s: %s", b.hash, o.Outcome, o.Err)
		case o.Outcome != outOK && o.Outcome != outNotFound:
			p.addf("blob %s: %s", b.hash, o.Err)
		}
	}
}

// checkConverged: every server's own ledger lists the same jobs, in the
// same states with the same counts.
func (g *grid) checkConverged(p *problems) {
	var views map[string]string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		views = map[string]string{}
		for _, s := range g.servers {
			var jobs []api.JobSummary
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := staleGet(ctx, s, "/v1/jobs", &jobs)
			cancel()
			if err != nil {
				views[s.ID] = err.Error()
				continue
			}
			sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })
			b, _ := json.Marshal(jobs)
			views[s.ID] = string(b)
		}
		same := true
		for _, v := range views {
			same = same && v == views[g.servers[0].ID]
		}
		if same {
			return
		}
	}
	p.addf("the servers' ledgers differ 30 s after the heal: %v", views)
}

// callBound is the longest any client call may take during a single cut.
const callBound = 10 * time.Second

// checkCalls: every call ended within callBound, and every error said
// what went wrong; no read returned wrong bytes.
func checkCalls(ops []op, p *problems) {
	var slow []op
	for _, o := range ops {
		if o.took() > callBound {
			slow = append(slow, o)
		}
		if o.Unclear {
			p.addf("call #%d (%s %s via %s) failed without saying why: %q", o.ID, o.Kind, o.Key, o.Via, o.Err)
		}
		if o.Wrong != "" {
			p.addf("call #%d (%s %s via %s) read wrong bytes: %s", o.ID, o.Kind, o.Key, o.Via, o.Wrong)
		}
	}
	sort.Slice(slow, func(a, b int) bool { return slow[a].took() > slow[b].took() })
	for i, o := range slow {
		if i == 5 {
			p.addf("... and %d more calls over %s", len(slow)-5, callBound)
			break
		}
		p.addf("call #%d (%s %s via %s, at %s) took %s (bound %s): %s %s", o.ID, o.Kind, o.Key, o.Via,
			o.Invoke.Round(100*time.Millisecond), o.took().Round(100*time.Millisecond), callBound, o.Outcome, o.Err)
	}
}

// healthyThroughout says whether worker reached a majority server at every
// moment of [from, to], by the schedule's events.
func healthyThroughout(events []event, worker string, from, to time.Duration) bool {
	for i, e := range events {
		next := time.Duration(1<<63 - 1)
		if i+1 < len(events) {
			next = events[i+1].At
		}
		if next > from && e.At <= to && !e.Healthy[worker] {
			return false
		}
	}
	return len(events) > 0 && events[0].At <= from
}

// checkHealthyNeverDown: the leader never lists down a worker that had
// reached a majority server for the whole window before (a worker the
// schedule cut off may be marked down, and takes up to window to come back).
func checkHealthyNeverDown(events []event, samples []sample, window time.Duration, p *problems) {
	reported := map[string]bool{}
	for _, s := range samples {
		for _, w := range sortedKeys(s.Workers) {
			if s.Workers[w] != api.PeerDown || reported[w] || !healthyThroughout(events, w, s.At-window, s.At) {
				continue
			}
			reported[w] = true
			p.addf("at %s the leader %s listed %s down, though %s had reached a majority server since %s",
				s.At.Round(100*time.Millisecond), s.Leader, w, w, (s.At - window).Round(100*time.Millisecond))
		}
	}
}

// checkProgressAfterNewLeader: after every change of leader, while there
// is work a healthy worker can do (queued tasks, or leases of healthy
// workers) and no new fault starts, some task finishes within bound.
func checkProgressAfterNewLeader(events []event, samples []sample, bound time.Duration, p *problems) {
	const slack = 500 * time.Millisecond // the observer's pace
	prev := ""
	for i, s := range samples {
		if s.Leader == "" || !s.View {
			continue
		}
		changed := prev != "" && s.Leader != prev
		prev = s.Leader
		if !changed || faultStarts(events, s.At, s.At+bound+slack) {
			continue
		}
		open, healthy := s.Queued, false
		for w, running := range s.Running {
			if healthyThroughout(events, w, s.At-2*time.Second, s.At+bound+slack) {
				open += running
				healthy = true
			}
		}
		if !healthy || open == 0 {
			continue
		}
		progressed := false
		for _, later := range samples[i+1:] {
			if later.At > s.At+bound+slack {
				break
			}
			progressed = progressed || later.View && later.Done > s.Done
		}
		if !progressed {
			p.addf("no task finished within %s after %s took over at %s (%d tasks open for healthy workers, %d done)",
				bound, s.Leader, s.At.Round(100*time.Millisecond), open, s.Done)
		}
	}
}

// faultStarts says whether a fault (not a heal) begins in (from, to].
func faultStarts(events []event, from, to time.Duration) bool {
	for _, e := range events {
		if e.At > from && e.At <= to && !e.Heal {
			return true
		}
	}
	return false
}
