package worker

import (
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestHeartbeat_EveryPeriodWithRunningAndHeldLeases: a worker heartbeats
// every period (not sooner), saying who it is, what it runs and every
// lease it holds, prefetched ones included.
func TestHeartbeat_EveryPeriodWithRunningAndHeldLeases(t *testing.T) {
	g := newFakeGrid()
	leased := tasksOf("j", 3)
	g.queue(leased...)
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: 2, Heartbeat: 50 * time.Millisecond, Address: "w1.example:9000",
		Engines: []string{"wazero"}, Pool: runner})
	began := time.Now()
	runWorker(t, w)
	defer close(runner.gate)
	eventually(t, "a heartbeat with 1 running and 3 held", func() bool {
		for _, c := range g.callsOf("Heartbeat") {
			if len(c.heartbeat.Running) == 1 && len(c.heartbeat.Held) == 3 {
				return true
			}
		}
		return false
	})
	eventually(t, "3 heartbeats", func() bool { return len(g.callsOf("Heartbeat")) >= 3 })

	hbs := g.callsOf("Heartbeat")
	i := slices.IndexFunc(hbs, func(c call) bool { return len(c.heartbeat.Running) == 1 && len(c.heartbeat.Held) == 3 })
	hb := hbs[i].heartbeat
	if hb.Worker != "w1" || hb.Address != "w1.example:9000" || hb.Cores != 1 || !slices.Equal(hb.Engines, []string{"wazero"}) ||
		hb.Draining || hb.Storage || hb.StorageOnly {
		t.Fatalf("heartbeat %+v", *hb)
	}
	if !sameRefs(hb.Held, refs(leased...)) {
		t.Fatalf("held %v, want the 3 leased %v", hb.Held, refs(leased...))
	}
	if first := refs(leased[0]); !sameRefs(hb.Running, first) {
		t.Fatalf("running %v, want the first leased %v", hb.Running, first)
	}
	for n, c := range hbs[:3] {
		if min := time.Duration(n+1) * 50 * time.Millisecond; c.at.Sub(began) < min {
			t.Fatalf("heartbeat %d came %v after the start, before %v", n+1, c.at.Sub(began), min)
		}
	}
}

// TestHeartbeat_StaleAttemptIsStoppedAndNotReported: an attempt the
// grid names stale in a heartbeat answer is stopped; it is not reported,
// its lease is dropped, and its slot is leased again.
func TestHeartbeat_StaleAttemptIsStoppedAndNotReported(t *testing.T) {
	g := newFakeGrid()
	stale := task("stale", 0)
	g.queue(stale)
	g.onHeartbeat = func(n int, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		return &api.HeartbeatResponse{Stale: append(refs(stale), api.TaskRef{Job: "other", Index: 1, Attempt: 1})}, nil
	}
	runner := &fakeRunner{gate: make(chan struct{})}
	w := testWorker(t, g, Config{Cores: 1, Prefetch: -1, Heartbeat: 10 * time.Millisecond, Pool: runner})
	runWorker(t, w)
	eventually(t, "the stale attempt stopped", func() bool { return slices.Equal(runner.cancelledNames(), []string{stale.Name}) })
	stopped := time.Now()
	eventually(t, "its slot leased again", func() bool { return len(g.callsOf("Lease")) >= 2 })
	eventually(t, "a later heartbeat holding nothing", func() bool {
		hbs := g.callsOf("Heartbeat")
		last := hbs[len(hbs)-1]
		return last.at.After(stopped) && len(last.heartbeat.Held) == 0
	})
	if lease := g.callsOf("Lease")[1].lease; lease.Max != 1 {
		t.Fatalf("the freed slot was leased as %d, want 1", lease.Max)
	}
	if n := len(g.callsOf("Report")); n != 0 {
		t.Fatalf("%d reports of a stopped attempt", n)
	}
}

// TestHeartbeat_CallsAreBoundedByHalfTheTTL: until the grid says its TTL a
// heartbeat call may take up to a second (twice the period, at least 1s);
// after, at most half the TTL, so a stuck call cannot outlast it.
func TestHeartbeat_CallsAreBoundedByHalfTheTTL(t *testing.T) {
	g := newFakeGrid()
	g.onHeartbeat = func(n int, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		return &api.HeartbeatResponse{TTL: 200 * time.Millisecond}, nil
	}
	w := testWorker(t, g, Config{Cores: 1, Heartbeat: 10 * time.Millisecond, Pool: &fakeRunner{}})
	runWorker(t, w)
	eventually(t, "3 heartbeats", func() bool { return len(g.callsOf("Heartbeat")) >= 3 })
	hbs := g.callsOf("Heartbeat")
	if d := hbs[0].timeout; d <= 500*time.Millisecond || d > time.Second {
		t.Fatalf("first heartbeat had %v, want up to 1s", d)
	}
	for _, c := range hbs[1:3] {
		if c.timeout <= 0 || c.timeout > 100*time.Millisecond {
			t.Fatalf("heartbeat after a 200ms TTL had %v, want at most 100ms", c.timeout)
		}
	}
}

// TestHeartbeat_StorageOnlyPeerRegistersAtOnceAndNeverLeases: a peer that
// runs no tasks heartbeats as soon as it starts (not a period later) as
// storage only, at its shard address, with no cores, engines or leases,
// and never asks for tasks.
func TestHeartbeat_StorageOnlyPeerRegistersAtOnceAndNeverLeases(t *testing.T) {
	g := newFakeGrid()
	w := testWorker(t, g, Config{ID: "s1", NoTasks: true, StorageBind: "127.0.0.1:0", Heartbeat: time.Hour, SweepInterval: -1})
	run := runWorker(t, w)
	eventually(t, "a heartbeat", func() bool { return len(g.callsOf("Heartbeat")) > 0 })
	run.stop()
	want := api.HeartbeatRequest{Worker: "s1", Address: w.StorageAddr(), StorageOnly: true}
	hbs := g.callsOf("Heartbeat")
	if len(hbs) != 2 || !sameHeartbeat(*hbs[0].heartbeat, want) {
		t.Fatalf("heartbeats %+v, want %+v then a draining one", hbs, want)
	}
	want.Draining = true
	if !sameHeartbeat(*hbs[1].heartbeat, want) {
		t.Fatalf("last heartbeat %+v, want %+v", *hbs[1].heartbeat, want)
	}
	if n := len(g.callsOf("Lease")); n != 0 {
		t.Fatalf("a storage-only peer leased %d times", n)
	}
}

func sameHeartbeat(a, b api.HeartbeatRequest) bool {
	return a.Worker == b.Worker && a.Address == b.Address && a.Cores == b.Cores && a.Draining == b.Draining &&
		a.Storage == b.Storage && a.StorageOnly == b.StorageOnly && a.Running == nil && a.Held == nil && a.Engines == nil &&
		b.Running == nil && b.Held == nil && b.Engines == nil
}
