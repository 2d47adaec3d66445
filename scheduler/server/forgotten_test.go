package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/tasks"
)

// TestHeartbeat_ForgottenLeaseGoesBackBeforeTheHeartbeatIsAnswered: a
// worker's heartbeat that does not hold a lease granted a TTL before it
// hands that lease back before it is answered (not on a later tick of the
// leader's loop), a heartbeat sooner than a TTL after the grant leaves it
// alone, and the lease the worker holds stays its own.
func TestHeartbeat_ForgottenLeaseGoesBackBeforeTheHeartbeatIsAnswered(t *testing.T) {
	const ttl, margin = 2 * time.Second, 100 * time.Millisecond // the leader's tick is 400 ms
	c := testcluster.New(t, 1, testcluster.Options{WorkerTTL: ttl, LeaseSlack: time.Hour, Logger: quiet})
	client := c.Client(c.Nodes...)
	ctx := context.Background()
	id := submitEcho(t, client, 4)
	leaseStart := time.Now()
	lost, err := client.Lease(ctx, &api.LeaseRequest{Worker: "w1", Max: 2}) // its reply "lost": w1 never holds these
	if err != nil || len(lost) != 2 {
		t.Fatalf("lease: %v %v", lost, err)
	}
	kept, err := client.Lease(ctx, &api.LeaseRequest{Worker: "w1", Max: 1})
	if err != nil || len(kept) != 1 {
		t.Fatalf("lease: %v %v", kept, err)
	}
	leaseEnd := time.Now()
	held := []api.TaskRef{{Job: kept[0].Job, Index: kept[0].Index, Attempt: kept[0].Attempt}}
	heartbeats := 0
	testcluster.Eventually(t, 30*time.Second, "the forgotten leases queued again", func() bool {
		sent := time.Now()
		if _, err := client.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "w1", Held: held}); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		answered := time.Now()
		heartbeats++
		st, err := client.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case answered.Before(leaseStart.Add(ttl-margin)) && st.Queued != 1:
			t.Fatalf("a heartbeat within a TTL of the grants released them: %d queued", st.Queued)
		case sent.After(leaseEnd.Add(ttl+margin)) && st.Queued != 3:
			t.Fatalf("heartbeat %d, %v after the grants, was answered before they were handed back: %d queued",
				heartbeats, sent.Sub(leaseEnd), st.Queued)
		}
		return st.Queued == 3
	})
	st, err := client.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range st.TaskStats {
		if task.Index == held[0].Index && (task.State != tasks.TaskLeased || task.Worker != "w1") {
			t.Fatalf("the lease w1 holds was handed back: %+v", task)
		}
	}
}
