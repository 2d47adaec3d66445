package testcluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// TestLedgerChurn_ServersEndOnOneLedger churns a three-server group in one
// process while two workers run jobs a client keeps submitting: servers are
// stopped and restarted from their data dirs, cut off from the others'
// Raft traffic and healed, in an order drawn from a seed. Afterwards every
// acknowledged job is there and complete, every task done once with the
// right output, and every server holds the same ledger (state hash).
//
// A few seeds run by default; PEERGRID_NEMESIS=long runs many, longer;
// PEERGRID_NEMESIS_SEED=N runs that seed alone. Each seed is printed, and
// named in every failure (as the subtest's name).
func TestLedgerChurn_ServersEndOnOneLedger(t *testing.T) {
	seeds, steps := []int64{1, 2, 3}, 12
	if os.Getenv("PEERGRID_NEMESIS") == "long" {
		seeds, steps = nil, 60
		base := time.Now().UnixNano() % 1_000_000
		for i := range int64(20) {
			seeds = append(seeds, base+i)
		}
	}
	if s := os.Getenv("PEERGRID_NEMESIS_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("PEERGRID_NEMESIS_SEED=%q: %v", s, err)
		}
		seeds = []int64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (PEERGRID_NEMESIS_SEED=%d reruns it), %d steps", seed, seed, steps)
			churn(t, seed, steps)
		})
	}
}

func churn(t *testing.T, seed int64, steps int) {
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: time.Second, LeaseSlack: time.Second, LeaderWait: time.Second})
	all := c.Client(c.Nodes...)
	mod := examples.Tiny()
	if err := all.PutBlob(context.Background(), storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		startEchoWorker(t, fmt.Sprintf("w%d", i+1), c.Client(c.Nodes...))
	}
	ctx, stop := context.WithCancel(context.Background())
	sub := &submitter{client: c.Client(c.Nodes...), module: storage.Hash(mod)}
	var wg sync.WaitGroup
	wg.Go(func() { sub.run(ctx) })

	rng := rand.New(rand.NewPCG(uint64(seed), 0x636875726e))
	for range steps {
		t.Log(churnStep(c, rng))
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond) // the schedule, not a wait for state
	}
	stop()
	wg.Wait()

	c.Net.Heal()
	for _, n := range c.Nodes {
		if n.Server == nil {
			c.Restart(n)
		}
	}
	c.WaitRegistered()
	// A submit the client gave up on may sit uncommitted in a cut-off
	// leader's log and commit later, when that leader returns (Raft allows
	// it: the submit was never acknowledged). After a barrier on the
	// healed group the set of jobs is final.
	c.Barrier(c.Nodes...)
	checkJobs(t, all, sub)
	c.WaitConverged(c.Nodes...)
}

// churnStep stops, restarts, cuts off or heals a server, and says which.
func churnStep(c *testcluster.Cluster, rng *rand.Rand) string {
	running := c.Running()
	var stopped []*testcluster.Node
	for _, n := range c.Nodes {
		if n.Server == nil {
			stopped = append(stopped, n)
		}
	}
	switch r := rng.IntN(10); {
	case r < 3 && len(running) > 1:
		n := running[rng.IntN(len(running))]
		c.Stop(n)
		return "stop " + n.ID
	case r < 6 && len(stopped) > 0:
		n := stopped[rng.IntN(len(stopped))]
		c.Restart(n)
		return "restart " + n.ID
	case r < 8:
		n := c.Nodes[rng.IntN(len(c.Nodes))]
		var rest []string
		for _, o := range c.Nodes {
			if o != n {
				rest = append(rest, o.ID)
			}
		}
		c.Net.Cut([]string{n.ID}, rest)
		return "cut off " + n.ID
	default:
		c.Net.Heal()
		return "heal"
	}
}

// submitter keeps submitting small echo jobs, each named for its number.
type submitter struct {
	client *client.Client
	module string

	mu    sync.Mutex
	names []string          // every job a submit was tried for
	tasks map[string]int    // name -> tasks
	acked map[string]string // name -> id, for submits that were answered
	tries int
}

func (s *submitter) run(ctx context.Context) {
	s.tasks, s.acked = map[string]int{}, map[string]string{}
	for ctx.Err() == nil {
		s.tries++
		name := fmt.Sprintf("churn-%d", s.tries)
		n := 5 + s.tries%20
		s.mu.Lock()
		s.names, s.tasks[name] = append(s.names, name), n
		s.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := s.client.Submit(cctx, &tasks.JobSpec{Name: name, ModuleHash: s.module, Args: []string{"{index}", name},
			Tasks: n, Timeout: 2 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: 1000})
		cancel()
		s.mu.Lock()
		if err == nil {
			s.acked[name] = id
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // the client's pace
		}
	}
}

// checkJobs: every acknowledged job is there under its id, no submit made
// two jobs, and every job completes with each task's output right, each
// accepted once.
func checkJobs(t *testing.T, client *client.Client, s *submitter) {
	t.Helper()
	var jobs []api.JobSummary
	testcluster.Eventually(t, 30*time.Second, "the job list", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		jobs, err = client.Jobs(ctx)
		return err == nil
	})
	byName := map[string][]api.JobSummary{}
	for _, j := range jobs {
		byName[j.Name] = append(byName[j.Name], j)
	}
	total := 0
	for _, name := range s.names {
		found := byName[name]
		id, acked := s.acked[name]
		switch {
		case len(found) > 1:
			t.Fatalf("job %s was submitted once and created %d times", name, len(found))
		case len(found) == 0 && acked:
			t.Fatalf("job %s (%s) was acknowledged and is lost", name, id)
		case len(found) == 0:
			continue
		case acked && found[0].ID != id:
			t.Fatalf("job %s was acknowledged as %s and is listed as %s", name, id, found[0].ID)
		}
		n := s.tasks[name]
		sum := jobcheck.WaitJob(t, client, found[0].ID, time.Minute, func(s *api.JobSummary) bool { return s.State.Finished() })
		if sum.State != tasks.JobComplete {
			t.Fatalf("job %s ended %s: %+v", found[0].ID, sum.State, sum)
		}
		jobcheck.Results(t, client, found[0].ID, n, func(i int) string { return fmt.Sprintf("%d %s\n", i, name) })
		total += n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if after, err := client.Jobs(ctx); err != nil {
		t.Fatal(err)
	} else if len(after) != len(jobs) {
		t.Fatalf("%d jobs listed after the barrier, %d once every job finished: a submit committed late", len(jobs), len(after))
	}
	peers, err := client.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, p := range peers {
		accepted += p.Done
	}
	if accepted != total {
		t.Fatalf("the ledger accepted %d completions for %d tasks", accepted, total)
	}
	t.Logf("%d jobs of %d tasks in all; %d of %d submits answered", len(s.acked), total, len(s.acked), s.tries)
}

// echoRunner stands in for the executor pool: it "runs" a task by echoing
// its args, so the test checks the ledger, not the sandbox.
type echoRunner struct{}

func (echoRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	return &wasm.Result{Stdout: []byte(strings.Join(req.Args, " ") + "\n")}, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startEchoWorker(t *testing.T, id string, client *client.Client) {
	t.Helper()
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: client, DataDir: t.TempDir(), Cores: 2,
		Pool: echoRunner{}, Heartbeat: 200 * time.Millisecond, LeaseWait: time.Second, DrainGrace: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); w.Close() })
}
