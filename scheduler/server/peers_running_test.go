package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// TestPeers_RunningIsWhatTheWorkerRunsLeasedWhatItHolds: a worker holding
// three leases whose heartbeat says it runs one is listed running 1,
// leased 3 (the prefetched two are not "running"); before any heartbeat
// of it, running falls back to its leases.
func TestPeers_RunningIsWhatTheWorkerRunsLeasedWhatItHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startServerGrid(t)
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, &tasks.JobSpec{Name: "held", ModuleHash: storage.Hash(mod), Args: []string{"{index}"}, Tasks: 3,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}); err != nil {
		t.Fatal(err)
	}
	grants, err := c.Lease(ctx, &api.LeaseRequest{Worker: "w1", Cores: 4, Max: 3})
	if err != nil || len(grants) != 3 {
		t.Fatalf("lease: %d grants, %v", len(grants), err)
	}
	peer := func() api.Peer {
		peers, err := c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.ID == "w1" {
				return p
			}
		}
		t.Fatalf("w1 not among %+v", peers)
		return api.Peer{}
	}
	if p := peer(); p.Running != 3 || p.Leased != 3 {
		t.Fatalf("before a heartbeat: running %d, leased %d, want 3 and 3 (the leases)", p.Running, p.Leased)
	}
	var held []api.TaskRef
	for _, a := range grants {
		held = append(held, api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt})
	}
	if _, err := c.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1", Cores: 4, Running: held[:1], Held: held}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "w1 listed running 1 of its 3 leases", func() bool {
		p := peer()
		return p.Running == 1 && p.Leased == 3
	})
}
