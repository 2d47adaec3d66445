package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/tasks"
)

// TestCluster_PausedWorkerKeepsItsLeasesUpToMaxPauseKeep: a worker whose
// heartbeats say it is paused keeps its leases past their expiry (timeout
// 2s + slack), for up to the leader's MaxPauseKeep; after that they expire
// as any other, and the task runs again.
func TestCluster_PausedWorkerKeepsItsLeasesUpToMaxPauseKeep(t *testing.T) {
	const slack = 200 * time.Millisecond
	c := testcluster.New(t, 1, testcluster.Options{WorkerTTL: 500 * time.Millisecond, LeaseSlack: slack, MaxPauseKeep: 6 * time.Second})
	client := c.Client(c.Nodes...)
	ctx := context.Background()
	id := submitEcho(t, client, 1) // timeout 2s
	got, err := client.Lease(ctx, &api.LeaseRequest{Worker: "w1", Max: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("lease: %v %v", got, err)
	}
	held := []api.TaskRef{{Job: got[0].Job, Index: got[0].Index, Attempt: got[0].Attempt}}
	start := time.Now()
	heartbeat := func() *api.HeartbeatResponse {
		resp, err := client.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1", Cores: 1, Held: held, Running: held, Paused: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := heartbeat(); resp.PauseKeep != 6*time.Second {
		t.Fatalf("PauseKeep %v, want the leader's 6s", resp.PauseKeep)
	}
	// Paused for twice the lease (timeout + slack): the lease stays.
	for time.Since(start) < 2*(2*time.Second+slack) {
		if resp := heartbeat(); len(resp.Stale) > 0 {
			t.Fatalf("after %v paused, the lease is stale: %v", time.Since(start).Round(time.Millisecond), resp.Stale)
		}
		time.Sleep(50 * time.Millisecond) // a worker's heartbeat period, not a wait for state
	}
	st, err := client.Job(ctx, id)
	if err != nil || st.TaskStats[0].State != tasks.TaskLeased || st.TaskStats[0].Attempts != 1 {
		t.Fatalf("after a long pause: %+v %v", st, err)
	}
	// Still paused, past MaxPauseKeep: the leader stops renewing and the
	// lease expires (charged as an attempt, as a lease that runs out is).
	testcluster.Eventually(t, 20*time.Second, "the lease expired after MaxPauseKeep", func() bool {
		heartbeat()
		st, err := client.Job(ctx, id)
		return err == nil && st.TaskStats[0].State == tasks.TaskQueued
	})
	if paused := time.Since(start); paused < 6*time.Second {
		t.Fatalf("the lease expired after %v of pause, before MaxPauseKeep", paused)
	}
}
