package nemesis

import (
	"context"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/proctest"
)

// sample is what the observer saw at one instant: each server's own view of
// the Raft group, and the leader's view of the workers and the work. It
// reads every server from inside that server's namespace, so partitions
// do not blind it (a paused server does not answer).
type sample struct {
	At     time.Duration     `json:"at_ns"`
	Views  map[string]string `json:"views"`            // server -> leader | follower | candidate | no answer
	Leader string            `json:"leader,omitempty"` // a server that leads and a majority names
	// From the leader's own applied ledger, when View:
	View    bool              `json:"view"`
	Workers map[string]string `json:"workers,omitempty"` // worker -> alive | down | draining
	Running map[string]int    `json:"running,omitempty"` // worker -> leases it holds
	Done    int               `json:"done"`              // tasks done, over every job
	Queued  int               `json:"queued"`            // tasks queued in unfinished jobs
}

// observe samples the grid every period into h until the returned stop is
// called.
func (g *grid) observe(h *history, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if s, ok := g.sampleOnce(ctx, h); ok {
				h.sample(s)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func (g *grid) sampleOnce(ctx context.Context, h *history) (sample, bool) {
	s := sample{At: h.now(), Views: map[string]string{}}
	type view struct {
		id string
		st *api.Status
	}
	views := make(chan view, len(g.servers))
	for _, srv := range g.servers {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := srv.Status(ctx)
			if err != nil {
				st = nil
			}
			views <- view{srv.ID, st}
		}()
	}
	named := map[string]int{}
	leaders := map[string]bool{}
	for range g.servers {
		v := <-views
		if v.st == nil {
			s.Views[v.id] = "no answer"
			continue
		}
		s.Views[v.id] = v.st.RaftState
		named[v.st.Leader]++
		if v.st.RaftState == "leader" {
			leaders[v.id] = true
		}
	}
	if ctx.Err() != nil {
		return s, false
	}
	for id := range leaders {
		if named[id] > len(g.servers)/2 {
			s.Leader = id
		}
	}
	if s.Leader != "" {
		g.sampleLeaderView(ctx, g.server(s.Leader), &s)
	}
	return s, true
}

// sampleLeaderView reads the workers and the work from the leader's own
// applied ledger.
func (g *grid) sampleLeaderView(ctx context.Context, leader *proctest.Server, s *sample) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var peers []api.Peer
	var jobs []api.JobSummary
	if staleGet(ctx, leader, "/v1/peers", &peers) != nil || staleGet(ctx, leader, "/v1/jobs", &jobs) != nil {
		return
	}
	s.View = true
	s.Workers, s.Running = map[string]string{}, map[string]int{}
	for _, p := range peers {
		for _, r := range p.Roles {
			if r == api.RoleWorker {
				s.Workers[p.ID], s.Running[p.ID] = p.State, p.Running
			}
		}
	}
	for _, j := range jobs {
		s.Done += j.Done
		if !j.State.Finished() {
			s.Queued += j.Queued
		}
	}
}
