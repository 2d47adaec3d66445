package replicatest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/tasks"
)

var forged = []byte("forged\n")

// collusionGrid is a dev grid with five driven workers: three honest ones
// and two liars that forge the same bytes. With shared, the liars joined
// with one join token (one volunteer's two machines); else each worker
// has a token of its own.
func collusionGrid(t *testing.T, shared bool) (*devgrid.Grid, []*liar.Worker) {
	g := emptyGrid(t)
	var ws []*liar.Worker
	for _, id := range []string{"honest-1", "honest-2", "honest-3"} {
		ws = append(ws, liar.StartDriven(t, g, "", id, truth))
	}
	token := ""
	if shared {
		token = liar.JoinToken(t, g, "one volunteer")
	}
	for _, id := range []string{"liar-1", "liar-2"} {
		ws = append(ws, liar.StartDriven(t, g, token, id, liar.Constant(forged)))
	}
	return g, ws
}

// trustAll clears every distrusted worker (operator).
func trustAll(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Distrusted {
			if err := c.TrustPeer(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// round runs one task: a fresh one-task R=3, Q=2 job (its args differ per
// round, so the result cache answers none), the five workers asking for
// work in a uniformly random order, each reporting at once, until the task
// ends. It reports whether the forged result was accepted. Any worker
// distrusted (a liar outvoted, or an honest one the colluders outvoted) is
// trusted again after every round, so losing votes never takes one out of
// the draw the odds are computed for.
func round(ctx context.Context, t *testing.T, c *client.Client, ws []*liar.Worker, rng *rand.Rand, k int) bool {
	t.Helper()
	spec := tinySpec(t, c, fmt.Sprintf("round-%d", k), 1)
	spec.Replicas, spec.Quorum = 3, 2
	id := submit(ctx, t, c, spec)
	for {
		for _, i := range rng.Perm(len(ws)) {
			if _, err := ws[i].Step(ctx); err != nil {
				t.Fatalf("round %d: %v", k, err)
			}
		}
		sum, err := c.JobSummary(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sum.State.Finished() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("round %d: job %s not done: %+v", k, id, sum)
		}
	}
	trustAll(ctx, t, c)
	r, err := c.TaskResult(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != tasks.TaskDone {
		t.Fatalf("round %d: task %s (%s: %s)", k, r.State, r.ErrorKind, r.Error)
	}
	return string(r.Stdout) == string(forged)
}

// TestReplicas_TwoColludersWinAtTheOddsOfRandomPlacement: two liars out of
// five workers forge the same bytes, R=3, Q=2, each worker on a credential
// of its own. The grid places each replica on whichever eligible worker
// asks first (a distinct worker per replica); the test makes the order of
// asking uniformly random, so a task's three replicas are a uniformly
// random 3 of the 5 workers. With both liars among them the forged hash
// has 2 votes and the truth 1, in any order of reports: forged wins. With
// one liar or none the truth has 2. So
//
//	P(forged accepted) = C(2,2)*C(3,1) / C(5,3) = 3/10.
//
// Over n tasks the count of forged results is Binomial(n, 0.3): the test
// accepts it within 4 standard deviations of n*0.3 (a false alarm about
// once in 16,000 runs).
func TestReplicas_TwoColludersWinAtTheOddsOfRandomPlacement(t *testing.T) {
	const n, p = 150, 0.3
	g, ws := collusionGrid(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := g.Client()
	rng := rand.New(rand.NewPCG(14, 2))
	wrong := 0
	for k := range n {
		if round(ctx, t, c, ws, rng, k) {
			wrong++
		}
	}
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	t.Logf("forged results accepted: %d of %d (expected %.1f ± %.1f)", wrong, n, mean, sd)
	if math.Abs(float64(wrong)-mean) > 4*sd {
		t.Fatalf("%d of %d forged results accepted, want %.1f ± %.1f (4 sd of Binomial(%d, %.1f))", wrong, n, mean, 4*sd, n, p)
	}
}

// TestReplicas_ColludersOnOneCredentialNeverWin: the same two liars joined
// with one join token. Replicas go to workers of distinct credentials while
// workers of other credentials are alive (three honest ones are), so the
// two liars are never on one task and no forged result is ever accepted,
// though the liars ran replicas (the test checks they were in the draw).
func TestReplicas_ColludersOnOneCredentialNeverWin(t *testing.T) {
	const n = 60
	g, ws := collusionGrid(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := g.Client()
	rng := rand.New(rand.NewPCG(14, 3))
	for k := range n {
		if round(ctx, t, c, ws, rng, k) {
			t.Fatalf("round %d: a forged result was accepted from two liars on one credential", k)
		}
	}
	if ran := ws[3].Stats().Leased + ws[4].Stats().Leased; ran < n/2 {
		t.Fatalf("the liars ran %d replicas in %d rounds: too few for the test to mean anything", ran, n)
	}
}
