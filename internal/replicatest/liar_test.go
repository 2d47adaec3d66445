package replicatest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// startRealWorkers starts n workers of package worker, each joined with a
// join token of its own, with a real executor pool each (the sandbox runs
// every task).
func startRealWorkers(t *testing.T, g *devgrid.Grid, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("real-%d", i+1)
		wdir := filepath.Join(dir, id)
		// One executor each, sharing the compile cache: the module is
		// compiled once for the three.
		pool, err := wasm.NewPool(context.Background(), wasm.PoolConfig{Size: 1,
			ModuleDir: wasm.ModuleDir(filepath.Join(wdir, "modules")), CacheDir: filepath.Join(dir, "compile")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := liar.Enroll(ctx, g.ClientWith(liar.JoinToken(t, g, id)), g.ClientWith, wdir, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(context.Background(), worker.Config{ID: id, Client: c, DataDir: wdir, Cores: 1, Pool: pool,
			Heartbeat: 200 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done; w.Close() })
		ids = append(ids, id)
	}
	return ids
}

// TestReplicas_OneLiarIsOutvotedDistrustedAndTrustedAgain: R=3, Q=2 on
// three real workers and one liar that answers every task with the same
// wrong bytes. Every task's agreed result is the real one, two real
// replicas agreeing on it; the liar's record shows outvoted results and no
// agreed ones, and once it lost enough it is distrusted and leased nothing
// more (a second job runs without it); `TrustPeer` (operator) clears it and
// it is leased work again.
func TestReplicas_OneLiarIsOutvotedDistrustedAndTrustedAgain(t *testing.T) {
	g := emptyGrid(t)
	startRealWorkers(t, g, 3)
	bad := liar.Start(t, g, "", "liar", liar.Constant([]byte("wrong\n")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := g.Client()

	// How many of a job's replicas the liar gets depends on how fast the
	// real workers are (a replica it has not reported when two real ones
	// agree is no vote), so jobs of 12 tasks run until it is distrusted.
	var rec api.Peer
	for round := 1; !rec.Distrusted; round++ {
		if round > 5 {
			t.Fatalf("the liar's record after 5 jobs of 12 tasks %+v: want distrusted", rec)
		}
		runCheckedJob(ctx, t, c, fmt.Sprintf("first-%d", round), 12)
		rec = peer(ctx, t, c, "liar")
	}
	if rec.Outvoted < 3 || rec.Agreed != 0 {
		t.Fatalf("the liar's record %+v: want >= 3 outvoted, none agreed, distrusted", rec)
	}

	leased := bad.Stats().Leased
	again := tinySpec(t, c, "second", 6)
	again.Replicas, again.Quorum = 3, 2
	if st := wait(ctx, t, c, submit(ctx, t, c, again)); st.State != "complete" {
		t.Fatalf("second job %s with the liar distrusted: %s", st.ID, st.State)
	}
	if got := bad.Stats().Leased; got != leased {
		t.Fatalf("the distrusted liar was leased %d more tasks", got-leased)
	}

	if err := c.TrustPeer(ctx, "liar"); err != nil {
		t.Fatal(err)
	}
	if rec := peer(ctx, t, c, "liar"); rec.Distrusted || rec.Outvoted < 3 {
		t.Fatalf("after TrustPeer the liar is %+v", rec)
	}
	// The liar asks again within its lease wait; real workers may finish a
	// small job before that (in one CI run, ten jobs in a row), so jobs
	// follow until it has taken a replica, for up to a minute: a liar
	// still distrusted would be leased nothing however long it asked.
	deadline := time.Now().Add(time.Minute)
	for k := 0; bad.Stats().Leased == leased; k++ {
		if time.Now().After(deadline) {
			t.Fatalf("the trusted-again liar was leased nothing of %d jobs of 12 tasks on 4 workers in a minute", k)
		}
		more := tinySpec(t, c, fmt.Sprintf("more-%d", k), 12)
		more.Replicas, more.Quorum = 3, 2
		wait(ctx, t, c, submit(ctx, t, c, more))
	}
}

// TestReplicas_TrustPeerIsForOperatorsOnly: a submitter cannot clear a
// distrusted worker.
func TestReplicas_TrustPeerIsForOperatorsOnly(t *testing.T) {
	g := emptyGrid(t)
	liar.Start(t, g, "", "someone", truth)
	ctx := context.Background()
	tok, err := g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	err = g.ClientWith(tok.Secret).TrustPeer(ctx, "someone")
	if se := (*client.StatusError)(nil); !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("a submitter's TrustPeer: %v, want HTTP 403", err)
	}
}

// runCheckedJob runs a job of n tiny tasks with R=3, Q=2 and checks that
// every task is done with its true output, agreed by two replicas.
func runCheckedJob(ctx context.Context, t *testing.T, c *client.Client, name string, n int) {
	t.Helper()
	spec := tinySpec(t, c, name, n)
	spec.Replicas, spec.Quorum = 3, 2
	st := wait(ctx, t, c, submit(ctx, t, c, spec))
	rs, err := c.Results(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if want := fmt.Sprintf("%s %d\n", name, i); r.State != "done" || string(r.Stdout) != want || agreedHash(st.TaskStats[i], 2) != hashOf([]byte(want)) {
			t.Fatalf("%s task %d: %s %q, replicas %+v; want done with %q agreed by 2", name, i, r.State, r.Stdout, st.TaskStats[i].Replicas, want)
		}
	}
}
