package replicatest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/tasks"
)

// adaptiveRound runs one one-task adaptive job: first asks first (so it
// holds the first replica, the one whose record decides the check), then
// the others in random order until the task ends. It returns the task's
// status: checked when it has two votes or more.
func adaptiveRound(ctx context.Context, t *testing.T, c *client.Client, first *liar.Worker, others []*liar.Worker, rng *rand.Rand, tag string) api.TaskStatus {
	t.Helper()
	spec := tinySpec(t, c, tag, 1)
	spec.Adaptive = true
	id := submit(ctx, t, c, spec)
	if n, err := first.Step(ctx); err != nil || n != 1 {
		t.Fatalf("%s: the first worker leased %d (%v), want the task", tag, n, err)
	}
	for {
		sum, err := c.JobSummary(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sum.State.Finished() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: job %s not done: %+v", tag, id, sum)
		}
		for _, i := range rng.Perm(len(others)) {
			if _, err := others[i].Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.TaskStats[0]
}

func votes(ts api.TaskStatus) int {
	n := 0
	for _, r := range ts.Replicas {
		if r.Hash != "" {
			n++
		}
	}
	return n
}

func checkedRate(checked []bool) float64 {
	n := 0
	for _, c := range checked {
		if c {
			n++
		}
	}
	return float64(n) / float64(len(checked))
}

// TestReplicas_AdaptiveChecksLessAsTrustGrowsAndAlwaysAfterAnOutvote: with
// replicas = "adaptive" the task of a worker with a clean streak s is
// checked with probability max(0.05, 10/(10+s)); s grows by one with each
// checked result that agrees. The worker under test takes the first
// replica of one-task jobs, two honest workers the checks:
//   - its first task, at streak 0, is always checked;
//   - its check rate over rounds 1-20 (p from 1 down to about 0.5) is well
//     above its rate over rounds 100-149 (p about 0.2): expected 0.75 and
//     0.2, the test wants a gap of more than 0.2 (3 sd of the difference);
//   - then it lies until a check outvotes it (its unchecked lies are
//     accepted: the price of sampling), and turns honest: its next task,
//     back at streak 0, is checked, and so are most of the ten after
//     (expected 0.72), more than in rounds 100-149.
func TestReplicas_AdaptiveChecksLessAsTrustGrowsAndAlwaysAfterAnOutvote(t *testing.T) {
	g := emptyGrid(t)
	var lying atomic.Bool
	subject := liar.StartDriven(t, g, "", "subject", func(a *api.Assignment) []byte {
		if lying.Load() {
			return []byte("wrong\n")
		}
		return truth(a)
	})
	others := []*liar.Worker{liar.StartDriven(t, g, "", "checker-1", truth), liar.StartDriven(t, g, "", "checker-2", truth)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := g.Client()
	rng := rand.New(rand.NewPCG(14, 4))

	var checked []bool
	for k := range 150 {
		ts := adaptiveRound(ctx, t, c, subject, others, rng, fmt.Sprintf("trust-%d", k))
		if ts.State != tasks.TaskDone {
			t.Fatalf("round %d: %s %s", k, ts.State, ts.Error)
		}
		checked = append(checked, votes(ts) >= 2)
	}
	if !checked[0] {
		t.Fatal("the first task of a new worker was not checked")
	}
	early, late := checkedRate(checked[1:21]), checkedRate(checked[100:150])
	t.Logf("check rate: rounds 1-20 %.2f, rounds 100-149 %.2f", early, late)
	if early-late <= 0.2 || late == 0 {
		t.Fatalf("check rate rounds 1-20 %.2f, rounds 100-149 %.2f: want it to fall by more than 0.2 and stay above 0", early, late)
	}

	lying.Store(true)
	for k := 0; ; k++ {
		ts := adaptiveRound(ctx, t, c, subject, others, rng, fmt.Sprintf("lie-%d", k))
		if hasVerdict(ts.Replicas, "subject", api.VerdictOutvoted) {
			break
		}
		if k == 100 {
			t.Fatal("100 lies and none checked: the floor of 5% would have caught one")
		}
	}
	lying.Store(false)
	if rec := peer(ctx, t, c, "subject"); rec.Streak != 0 || rec.Outvoted == 0 {
		t.Fatalf("after an outvote the subject's record is %+v: want streak 0", rec)
	}
	var after []bool
	for k := range 11 {
		ts := adaptiveRound(ctx, t, c, subject, others, rng, fmt.Sprintf("after-%d", k))
		after = append(after, votes(ts) >= 2)
	}
	if !after[0] {
		t.Fatal("the first task after an outvote was not checked")
	}
	if rate := checkedRate(after[1:]); rate <= late {
		t.Fatalf("check rate after the outvote %.2f, not above the trusted rate %.2f", rate, late)
	}
}

func hasVerdict(rs []api.ReplicaOutcome, worker, verdict string) bool {
	for _, r := range rs {
		if r.Worker == worker && r.Verdict == verdict {
			return true
		}
	}
	return false
}
