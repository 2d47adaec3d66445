package replicatest

import (
	"context"
	"fmt"
	"math"
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

// TestReplicas_AdaptiveChecksLessAsTrustGrowsAndAlwaysAfterAnOutvote: with
// replicas = "adaptive" the task of a worker with a clean streak s is
// checked with probability max(0.05, 10/(10+s)); s grows by one with each
// checked result that agrees. The worker under test takes the first
// replica of one-task jobs, two honest workers the checks:
//   - its first task, at streak 0, is always checked;
//   - its streak grows by one exactly in the rounds that were checked, so
//     the probability falls as its trust grows (from 1 to about 0.2 over
//     150 rounds); and the rounds checked are as many as that probability
//     round by round makes likely, within 4.5 standard deviations (a
//     false failure about once in 100,000 runs; a rule that did not fall
//     would check about 150 rounds where about 40 are expected);
//   - then it lies until a check outvotes it (its unchecked lies are
//     accepted: the price of sampling), and turns honest: its streak is
//     back at 0, its next task is checked, and the streak grows again
//     with each check.
//
// The rate of the rule itself, streak by streak, is checked on the ledger
// alone (ledger's TestReplicas_AdaptiveCheckRateFallsWithStreak). An
// earlier form compared the check rates of rounds 1-20 and 100-149 and
// wanted a gap above 0.2: about 1 run in 100 failed on chance alone.
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

	var trust sampled
	honestRounds(ctx, t, c, subject, others, rng, "trust", 150, &trust)
	if !trust.checked[0] {
		t.Fatal("the first task of a new worker was not checked")
	}
	trust.checkRate(t, "while trust grows")

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
	var after sampled
	honestRounds(ctx, t, c, subject, others, rng, "after", 11, &after)
	if !after.checked[0] {
		t.Fatal("the first task after an outvote was not checked")
	}
	after.checkRate(t, "after the outvote")
}

// sampled is what honest adaptive rounds showed: per round, the
// subject's streak before it and whether its task was checked.
type sampled struct {
	streaks []int
	checked []bool
}

// honestRounds runs n adaptive rounds of an honest subject into s,
// failing if its streak moves other than by one per checked round.
func honestRounds(ctx context.Context, t *testing.T, c *client.Client, subject *liar.Worker, others []*liar.Worker, rng *rand.Rand, tag string, n int, s *sampled) {
	t.Helper()
	streak := peer(ctx, t, c, "subject").Streak
	for k := range n {
		ts := adaptiveRound(ctx, t, c, subject, others, rng, fmt.Sprintf("%s-%d", tag, k))
		if ts.State != tasks.TaskDone {
			t.Fatalf("%s round %d: %s %s", tag, k, ts.State, ts.Error)
		}
		checked := votes(ts) >= 2
		s.streaks, s.checked = append(s.streaks, streak), append(s.checked, checked)
		next := peer(ctx, t, c, "subject").Streak
		if want := streak + map[bool]int{true: 1}[checked]; next != want {
			t.Fatalf("%s round %d (checked %v): the subject's streak went from %d to %d, want %d", tag, k, checked, streak, next, want)
		}
		streak = next
	}
}

// checkProbability is the rule's chance that a task first leased at
// streak s is checked: 1 at 0, then max(0.05, 10/(10+s)).
func checkProbability(s int) float64 {
	if s <= 0 {
		return 1
	}
	return 10 / float64(min(10+s, 200))
}

// checkRate fails unless the rounds checked are within 4.5 standard
// deviations (and one round) of what the rule's probability at each
// round's streak expects.
func (s sampled) checkRate(t *testing.T, what string) {
	t.Helper()
	var want, variance float64
	got := 0
	for i, streak := range s.streaks {
		p := checkProbability(streak)
		want += p
		variance += p * (1 - p)
		if s.checked[i] {
			got++
		}
	}
	margin := 4.5*math.Sqrt(variance) + 1
	t.Logf("%s: %d of %d rounds checked, %.1f expected (streak %d to %d)", what, got, len(s.checked), want, s.streaks[0], s.streaks[len(s.streaks)-1])
	if math.Abs(float64(got)-want) > margin {
		t.Fatalf("%s: %d of %d rounds checked, want %.1f ± %.1f from the streaks they were leased at", what, got, len(s.checked), want, margin)
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
