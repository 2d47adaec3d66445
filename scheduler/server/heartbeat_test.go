package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestHeartbeat_UnchangedWorkerCommitsNothing: a worker's first heartbeat
// commits it (alive, its cores); heartbeats that change nothing the ledger
// keeps are kept in the leader's memory (its last-seen time moves) and
// add no Raft entry; one that changes its cores commits again.
func TestHeartbeat_UnchangedWorkerCommitsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startServerGrid(t)
	c := g.Client()
	raft := g.Server.Store().Raft()
	hb := &api.HeartbeatRequest{Worker: "w1", Cores: 2, Engines: []string{"wazero"}}
	before := raft.LastIndex()
	if _, err := c.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if raft.LastIndex() == before {
		t.Fatal("the first heartbeat committed nothing: the worker is not in the ledger")
	}
	first := peerNamed(ctx, t, c.Peers, "w1")
	const beats = 200
	registered := raft.LastIndex()
	for range beats {
		if _, err := c.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	// The leader's own housekeeping may commit a little meanwhile; a commit
	// per heartbeat would be 200 entries.
	if grew := raft.LastIndex() - registered; grew > 5 {
		t.Fatalf("%d unchanged heartbeats added %d Raft entries", beats, grew)
	}
	if p := peerNamed(ctx, t, c.Peers, "w1"); p.State != api.PeerAlive || !p.LastSeen.After(first.LastSeen) {
		t.Fatalf("after the heartbeats: %+v (first seen %v): want alive, seen later", p, first.LastSeen)
	}
	hb.Cores = 3
	changed := raft.LastIndex()
	if _, err := c.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if p := peerNamed(ctx, t, c.Peers, "w1"); raft.LastIndex() == changed || p.Cores != 3 {
		t.Fatalf("a heartbeat with new cores: index %d -> %d, peer %+v: want committed, cores 3", changed, raft.LastIndex(), p)
	}
}

func peerNamed(ctx context.Context, t *testing.T, peers func(context.Context) ([]api.Peer, error), id string) api.Peer {
	t.Helper()
	ps, err := peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("%s not among %+v", id, ps)
	return api.Peer{}
}
