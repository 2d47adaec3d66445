package replicatest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// slowEcho stands in for the executor pool: it "runs" a task for a while
// and echoes its args, so the test checks the ledger's accounting of
// replicas, not the sandbox, with work in flight when things die.
type slowEcho struct{ d time.Duration }

func (s slowEcho) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.d): // the task's run time
	}
	return &wasm.Result{Stdout: []byte(strings.Join(req.Args, " ") + "\n")}, nil
}

// churnWorker is a worker of package worker on a test cluster; stop kills
// it as a machine going away would (no drain).
func churnWorker(t *testing.T, c *testcluster.Cluster, id string) (stop func()) {
	t.Helper()
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: c.Client(c.Nodes...), DataDir: t.TempDir(), Cores: 2,
		Pool: slowEcho{d: 40 * time.Millisecond}, Heartbeat: 200 * time.Millisecond, LeaseWait: time.Second, DrainGrace: time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait(); w.Close() }) }
	t.Cleanup(stop)
	return stop
}

// clusterGrid is what package liar needs of a test cluster: clients that
// fail over between all its servers.
type clusterGrid struct{ c *testcluster.Cluster }

func (g clusterGrid) Client() *client.Client { return g.c.Client(g.c.Nodes...) }

func (g clusterGrid) ClientWith(token string) *client.Client {
	var addrs []string
	for _, n := range g.c.Nodes {
		addrs = append(addrs, n.HTTPAddr)
	}
	cl := client.New(strings.Join(addrs, ","), token)
	cl.Pin(g.c.Pin())
	return cl
}

// applied waits until every server has applied the log up to index.
func applied(t *testing.T, c *testcluster.Cluster, index uint64) {
	t.Helper()
	poll(t, 30*time.Second, "every server applied the join token", func() bool {
		for _, n := range c.Nodes {
			if n.Server == nil || n.Server.Store().Raft().AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}

// TestReplicas_ChurnLosesNoReplicaAccounting: an R=2 job on three servers,
// four workers of package worker and two (truthful) liars that take 40 ms
// a task; mid-job two workers stop, one liar vanishes with its leases held
// (they must expire), and the leader is stopped (a new one is elected, a
// fifth worker joins, the old leader comes back).
// Every task ends done with two agreeing hashes that are its stdout's, or
// failed with a stated reason; no replica is counted twice (at most
// max_replicas replicas, at most Q agreeing), and the servers end on one
// ledger.
func TestReplicas_ChurnLosesNoReplicaAccounting(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: time.Second, LeaseSlack: 300 * time.Millisecond, LeaderWait: time.Second})
	all := c.Client(c.Nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mod := examples.Tiny()
	if err := all.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	var stops []func()
	for i := range 4 {
		stops = append(stops, churnWorker(t, c, fmt.Sprintf("w%d", i+1)))
	}
	var vanishing *liar.Worker
	for _, id := range []string{"l1", "l2"} {
		token := liar.JoinToken(t, clusterGrid{c}, id)
		applied(t, c, c.Barrier(c.Nodes...)) // every server knows the token, whichever the liar asks
		vanishing = liar.StartConfig(t, clusterGrid{c}, token, liar.Config{ID: id, Answer: truth, Cores: 2, Delay: 40 * time.Millisecond})
	}
	const n = 200
	spec := tasks.JobSpec{Name: "churn", ModuleHash: storage.Hash(mod), Args: []string{"churn", "{index}"}, Tasks: n,
		Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Replicas: 2, Retries: 3}
	id := submit(ctx, t, all, spec)
	progress := func(atLeast int) func() bool {
		return func() bool {
			s, err := all.JobSummary(ctx, id)
			return err == nil && (s.Done+s.Failed >= atLeast || s.State.Finished())
		}
	}
	poll(t, time.Minute, "a tenth of the tasks done", progress(n/10))
	stops[0]()
	stops[1]()
	vanishing.Stop()
	old := c.Leader()
	c.Stop(old)
	if s, err := all.JobSummary(ctx, id); err == nil && s.State.Finished() {
		t.Fatalf("the job finished before the churn (%+v): the test proved nothing", s)
	}
	churnWorker(t, c, "w5")
	poll(t, time.Minute, "half the tasks done", progress(n/2))
	c.Restart(old)

	st := wait(ctx, t, all, id)
	_, q, m := spec.Replication()
	for _, ts := range st.TaskStats {
		checkChurnedTask(t, ts, q, m)
	}
	if p := peer(ctx, t, all, "l2"); p.State != api.PeerDown || p.Leased != 0 {
		t.Fatalf("the vanished liar is %s holding %d leases, want down with none", p.State, p.Leased)
	}
	c.WaitConverged(c.Nodes...)
}

func checkChurnedTask(t *testing.T, ts api.TaskStatus, quorum, maxReplicas int) {
	t.Helper()
	if len(ts.Replicas) > maxReplicas {
		t.Fatalf("task %d: %d replicas, more than max_replicas %d: %+v", ts.Index, len(ts.Replicas), maxReplicas, ts.Replicas)
	}
	switch ts.State {
	case tasks.TaskDone:
		want := hashOf(fmt.Appendf(nil, "churn %d\n", ts.Index))
		agreed := 0
		for _, r := range ts.Replicas {
			if r.Verdict == api.VerdictAgreed {
				agreed++
				if r.Hash != want {
					t.Fatalf("task %d: agreed replica %+v, want hash %s", ts.Index, r, want)
				}
			}
		}
		if agreed != quorum {
			t.Fatalf("task %d: done with %d agreeing replicas, want %d: %+v", ts.Index, agreed, quorum, ts.Replicas)
		}
	case tasks.TaskFailed:
		if ts.ErrorKind == "" || ts.Error == "" {
			t.Fatalf("task %d: failed without a reason: %+v", ts.Index, ts)
		}
	default:
		t.Fatalf("task %d: %s after the job finished", ts.Index, ts.State)
	}
}
