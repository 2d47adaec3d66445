package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// echoRunner stands in for the executor pool in Raft tests: it "runs" a task
// by echoing its args, so the test checks the ledger, not the sandbox.
type echoRunner struct{ delay time.Duration }

func (e echoRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	select {
	case <-time.After(e.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// It says each run took a second, which a worker's credit counts.
	return &wasm.Result{Stdout: []byte(strings.Join(req.Args, " ") + "\n"), Duration: time.Second}, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startWorker runs a worker against the given client until the test ends or
// the returned stop is called (which drains it).
func startWorker(t *testing.T, id string, c *client.Client, delay time.Duration) (stop func()) {
	t.Helper()
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: c, DataDir: t.TempDir(), Cores: 2,
		Pool: echoRunner{delay: delay}, Heartbeat: 200 * time.Millisecond, LeaseWait: time.Second, DrainGrace: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait(); w.Close() }) }
	t.Cleanup(stop)
	return stop
}

func submitEcho(t *testing.T, c *client.Client, n int) string {
	t.Helper()
	ctx := context.Background()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "echo", ModuleHash: storage.Hash(mod), Args: []string{"{index}", "{count}"},
		Tasks: n, Timeout: 2 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: 5})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fillLog commits jobs echo jobs of n tasks each, only to give the log
// entries. A submit cut short by a leader change (possible with the tests'
// short Raft timeouts on a loaded machine) is tried again: a job committed
// twice is harmless here, where only the log's length matters.
func fillLog(t *testing.T, c *client.Client, jobs, n int) {
	t.Helper()
	mod := examples.Tiny()
	spec := &tasks.JobSpec{Name: "echo", ModuleHash: storage.Hash(mod), Args: []string{"{index}", "{count}"},
		Tasks: n, Timeout: 2 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Retries: 5}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.PutBlob(ctx, spec.ModuleHash, mod); err != nil {
		t.Fatal(err)
	}
	for committed := 0; committed < jobs; {
		if _, err := c.Submit(ctx, spec); err == nil {
			committed++
		} else if ctx.Err() != nil {
			t.Fatalf("submitting job %d of %d: %v", committed+1, jobs, err)
		}
	}
}

// echoOf is what the echo module writes for task i of n ("{index} {tasks}").
func echoOf(n int) func(int) string {
	return func(i int) string { return fmt.Sprintf("%d %d\n", i, n) }
}

func TestCluster_FollowerForwardsWritesAndServesConsistentReads(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{})
	f := c.Followers()[0]
	id := submitEcho(t, c.Client(f), 10)
	st, err := c.Client(c.Followers()[1]).Job(context.Background(), id)
	if err != nil || st.Tasks != 10 {
		t.Fatalf("consistent read through another follower: %+v %v", st, err)
	}
	c.WaitConverged()
}

// TestCluster_LeaderKillMidJob: a 1,000-task job submitted through a
// follower survives the leader being shut down without leaving.
func TestCluster_LeaderKillMidJob(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: time.Second, LeaseSlack: time.Second})
	all := c.Client(c.Nodes...)
	for i := 0; i < 2; i++ {
		startWorker(t, fmt.Sprintf("w%d", i), c.Client(c.Nodes...), time.Millisecond)
	}
	const n = 1000
	id := submitEcho(t, c.Client(c.Followers()[0]), n)
	jobcheck.WaitJob(t, all, id, time.Minute, func(s *api.JobSummary) bool { return s.Done >= n/5 })
	old := c.Leader()
	c.Stop(old)
	next := c.Leader()
	if next == old {
		t.Fatal("no new leader")
	}
	sum := jobcheck.WaitJob(t, all, id, time.Minute, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete {
		t.Fatalf("job ended %s: %+v", sum.State, sum)
	}
	jobcheck.EveryTaskOnce(t, all, id, n, echoOf(n))
	c.WaitConverged()
}

// TestCluster_FullRestart stops every server and starts them again from
// their data dirs: the ledger is unchanged, and the job goes on to finish.
func TestCluster_FullRestart(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: time.Second, LeaseSlack: time.Second, SnapshotThreshold: 128})
	const n = 300
	id := submitEcho(t, c.Client(c.Nodes...), n)
	stopWorker := startWorker(t, "w1", c.Client(c.Nodes...), 5*time.Millisecond)
	jobcheck.WaitJob(t, c.Client(c.Nodes...), id, time.Minute, func(s *api.JobSummary) bool { return s.Done >= 50 })
	stopWorker()
	// Let the ledger settle: the worker is marked down and holds no lease, so
	// no leader has anything left to change while the ledgers are compared.
	all := c.Client(c.Nodes...)
	testcluster.Eventually(t, 20*time.Second, "the stopped worker marked down with no leases", func() bool {
		peers, err := all.Peers(context.Background())
		sum, err2 := all.Job(context.Background(), id)
		return err == nil && err2 == nil && peerState(peers, "w1") == api.PeerDown && sum.Leased == 0
	})
	before := c.WaitConverged()
	if done := jobcheck.WaitJob(t, c.Client(c.Nodes...), id, time.Minute, func(*api.JobSummary) bool { return true }).Done; done == n {
		t.Fatal("the job finished before the restart: the test proves nothing")
	}
	for _, node := range c.Nodes {
		c.Stop(node)
	}
	for _, node := range c.Nodes {
		c.Restart(node)
	}
	c.Leader()
	if after := c.WaitConverged(); after != before {
		t.Fatalf("ledger after a full restart %s, want %s", after, before)
	}
	startWorker(t, "w2", c.Client(c.Nodes...), time.Millisecond)
	sum := jobcheck.WaitJob(t, c.Client(c.Nodes...), id, time.Minute, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete {
		t.Fatalf("after restart the job ended %s", sum.State)
	}
	jobcheck.EveryTaskOnce(t, c.Client(c.Nodes...), id, n, echoOf(n))
	c.WaitConverged()
}

// TestCluster_SnapshotCatchUp: a server that joins after the log was
// truncated catches up through InstallSnapshot.
func TestCluster_SnapshotCatchUp(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{SnapshotThreshold: 32})
	client := c.Client(c.Nodes...)
	fillLog(t, client, 5, 20)
	leader := c.Leader()
	if err := leader.Server.Store().Snapshot(); err != nil {
		t.Fatal(err)
	}
	fillLog(t, client, 80, 1) // push the log well past the snapshot so it is truncated
	if err := leader.Server.Store().Snapshot(); err != nil {
		t.Fatal(err)
	}
	late := c.AddServer()
	testcluster.Eventually(t, 60*time.Second, "the late server installs a snapshot", func() bool {
		return late.Server.Store().Raft().Stats()["last_snapshot_index"] != "0"
	})
	want := c.WaitConverged()
	if got := late.Server.Store().FSM().StateHash(); got != want {
		t.Fatalf("late server %s, leader %s", got, want)
	}
}

// TestCluster_PartitionedLeaderStopsCommitting cuts the leader off from the
// majority: it stops committing and its clients get a clear error; the
// majority elects a leader and goes on; after healing, the old leader follows
// and nothing committed is lost.
func TestCluster_PartitionedLeaderStopsCommitting(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{LeaderWait: 500 * time.Millisecond})
	before := submitEcho(t, c.Client(c.Nodes...), 5)
	old := c.Leader()
	rest := c.Followers()
	c.Net.Cut([]string{old.ID}, []string{rest[0].ID, rest[1].ID})

	newLeader := c.LeaderOf(rest)
	oldClient := c.Client(old)
	oldClient.Retries = 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := oldClient.Submit(ctx, &tasks.JobSpec{Name: "lost", ModuleHash: storage.Hash(examples.Tiny()), Tasks: 1,
		Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1})
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "leader") {
		t.Fatalf("write to the cut-off leader: %v, want a clear no-leader error", err)
	}
	after := submitEcho(t, c.Client(newLeader), 5)

	c.Net.Heal()
	testcluster.Eventually(t, 20*time.Second, "the old leader follows the new one", func() bool {
		_, id := old.Server.Store().Leader()
		return id == newLeader.ID && !old.Server.Store().IsLeader()
	})
	c.Leader()        // the old leader's return may cause one more election
	c.WaitConverged() // the old leader holds the same ledger as the others
	all := c.Client(c.Nodes...)
	for _, id := range []string{before, after} {
		if _, err := all.Job(context.Background(), id); err != nil {
			t.Fatalf("committed job %s lost: %v", id, err)
		}
	}
	jobs, _ := all.Jobs(context.Background())
	for _, j := range jobs {
		if j.Name == "lost" {
			t.Fatal("the write refused during the partition was applied")
		}
	}
}

func peerState(peers []api.Peer, id string) string {
	for _, p := range peers {
		if p.ID == id {
			return p.State
		}
	}
	return ""
}

// TestCluster_SixthServerJoinsAsNonVoter: up to five voters; a server that
// joins after that is a non-voter, and list-peers reports every server with
// its own state and last index.
func TestCluster_SixthServerJoinsAsNonVoter(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.Options{})
	late := c.AddServer()
	var peers []api.RaftPeer
	// Each server must be listed, reachable (its address is in the ledger)
	// and caught up with some log (a fresh joiner reports index 0 until the
	// leader's first append reaches it).
	testcluster.Eventually(t, 20*time.Second, "six servers listed, each reachable and with a log", func() bool {
		var err error
		peers, err = c.Client(c.Nodes[0]).RaftPeers(context.Background())
		if err != nil || len(peers) != 6 {
			return false
		}
		for _, p := range peers {
			if p.State != "leader" && p.State != "follower" || p.LastIndex == 0 || p.Address == "" {
				return false
			}
		}
		return true
	})
	voters, leaders := 0, 0
	for _, p := range peers {
		if p.Voter {
			voters++
		}
		if p.State == "leader" {
			leaders++
		}
		if p.ID == late.ID && p.Voter {
			t.Fatal("the sixth server joined as a voter")
		}
	}
	if voters != 5 || leaders != 1 {
		t.Fatalf("%d voters, %d leaders: %+v", voters, leaders, peers)
	}
	c.WaitConverged()
}

// TestCluster_NewLeaderHonoursLeaseGrace: across a leader change, a worker
// that stays alive keeps its leases (the new leader gives every worker one
// TTL of grace); a worker that died during the change loses its leases.
func TestCluster_NewLeaderHonoursLeaseGrace(t *testing.T) {
	const ttl = 2 * time.Second
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: ttl, LeaseSlack: time.Second, Logger: quiet})
	all := c.Client(c.Nodes...)
	mod := examples.Tiny()
	if err := all.PutBlob(context.Background(), storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := all.Submit(context.Background(), &tasks.JobSpec{Name: "hold", ModuleHash: storage.Hash(mod), Tasks: 4,
		Timeout: time.Hour, Memory: 1 << 20, MaxOutput: 64, Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The doomed worker leases two tasks and then never speaks again.
	doomed, err := all.Lease(context.Background(), &api.LeaseRequest{Worker: "doomed", Max: 2})
	if err != nil || len(doomed) != 2 {
		t.Fatalf("doomed lease: %v %v", doomed, err)
	}
	w, err := worker.New(context.Background(), worker.Config{ID: "alive", Client: c.Client(c.Nodes...), DataDir: t.TempDir(),
		Cores: 2, Prefetch: -1, Pool: echoRunner{delay: time.Hour}, Heartbeat: ttl / 10, LeaseWait: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	jobcheck.WaitJob(t, all, id, time.Minute, func(s *api.JobSummary) bool { return s.Leased == 4 })

	c.Stop(c.Leader())
	c.Leader()
	// Past the new leader's grace and a TTL more: the doomed worker's tasks
	// are back in the queue and only those.
	st := waitStatus(t, all, id, func(st *api.JobStatus) bool { return st.Queued == 2 })
	for _, task := range st.TaskStats {
		switch task.Worker {
		case "alive":
			if task.State != tasks.TaskLeased || task.Attempts != 1 {
				t.Fatalf("the live worker lost its lease: %+v\nall: %+v", task, st.TaskStats)
			}
		case "":
			if task.State != tasks.TaskQueued || task.ErrorKind != "lease_expired" {
				t.Fatalf("the dead worker's task: %+v", task)
			}
		default:
			t.Fatalf("unexpected task %+v\nall: %+v", task, st.TaskStats)
		}
	}
}

// TestCluster_NewLeaderWaitsATTLAndAHalfForWorkersToFindIt: a worker
// that last heard from the old leader and takes longer than a TTL to
// reach the new one (as a worker whose heartbeats went quiet takes up to
// three quarters of a TTL and HedgeAfter to notice a frozen leader) is
// not listed down by the new leader, provided it arrives within a TTL and
// a half of the election; one that never arrives is listed down.
func TestCluster_NewLeaderWaitsATTLAndAHalfForWorkersToFindIt(t *testing.T) {
	const ttl = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: ttl, Logger: quiet})
	all := c.Client(c.Nodes...)
	for _, w := range []string{"late", "gone"} {
		if _, err := all.Heartbeat(ctx, &api.HeartbeatRequest{Worker: w, Cores: 1}); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop(c.Leader())
	c.Leader()
	elected := time.Now()
	// "late" stays silent for 1.15 TTL after the election, then heartbeats;
	// until well past the grace neither it may be listed down, and "gone",
	// which never comes back, must be by the end.
	arrives, until := elected.Add(ttl+ttl*3/20), elected.Add(ttl*3/2+ttl/2)
	arrived := false
	for now := time.Now(); now.Before(until); now = time.Now() {
		if !arrived && now.After(arrives) {
			if _, err := all.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "late", Cores: 1}); err != nil {
				t.Fatal(err)
			}
			arrived = true
		}
		if state := listedState(ctx, t, all, "late"); state == api.PeerDown {
			t.Fatalf("%s after the election the new leader listed down a worker that came back %s after it",
				now.Sub(elected).Round(100*time.Millisecond), arrives.Sub(elected))
		}
		select {
		case <-time.After(100 * time.Millisecond): // the poll's pace
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if arrived {
			_, _ = all.Heartbeat(ctx, &api.HeartbeatRequest{Worker: "late", Cores: 1}) // a live worker keeps heartbeating
		}
	}
	testcluster.Eventually(t, 2*ttl, "the worker that never came back listed down", func() bool {
		return listedState(ctx, t, all, "gone") == api.PeerDown
	})
}

// listedState is the state the grid lists for peer id ("" if unlisted).
func listedState(ctx context.Context, t *testing.T, c *client.Client, id string) string {
	t.Helper()
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return peerState(peers, id)
}

func waitStatus(t *testing.T, c *client.Client, id string, cond func(*api.JobStatus) bool) *api.JobStatus {
	t.Helper()
	var last *api.JobStatus
	testcluster.Eventually(t, 30*time.Second, "job "+id+" status", func() bool {
		st, err := c.Job(context.Background(), id)
		last = st
		return err == nil && cond(st)
	})
	return last
}

// TestCluster_LeaseWhoseReplyWasLostIsHandedBack: a lease the ledger gives a
// worker that does not hold it (the grant's reply never arrived) is handed
// back as soon as the worker's heartbeat shows it, not at its expiry.
func TestCluster_LeaseWhoseReplyWasLostIsHandedBack(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{WorkerTTL: 500 * time.Millisecond, LeaseSlack: time.Hour})
	client := c.Client(c.Nodes...)
	id := submitEcho(t, client, 3)
	// Lease as "w1" and drop the answer, as if the reply were lost.
	if got, err := client.Lease(context.Background(), &api.LeaseRequest{Worker: "w1", Max: 3}); err != nil || len(got) != 3 {
		t.Fatalf("lease: %v %v", got, err)
	}
	// w1 keeps heartbeating, holding nothing.
	testcluster.Eventually(t, 10*time.Second, "the forgotten leases queued again", func() bool {
		client.Heartbeat(context.Background(), &api.HeartbeatRequest{Worker: "w1", Held: []api.TaskRef{}})
		st, err := client.Job(context.Background(), id)
		return err == nil && st.Queued == 3
	})
	st, _ := client.Job(context.Background(), id)
	for _, task := range st.TaskStats {
		if task.Attempts != 0 {
			t.Fatalf("a lost grant was charged as an attempt: %+v", task)
		}
	}
}

// TestCluster_NewLeaderDoesNotMarkServersDown: servers do not heartbeat, so
// a new leader must not run liveness clocks for them (it once did, and
// marked itself and the other servers down a TTL after taking over). Two
// workers crash (one heartbeat, then silence) one after the other: the
// first is marked down once the new leader's grace has passed and its
// clocks run, the second a whole TTL after that, by when any server whose
// clock had started would be down too.
func TestCluster_NewLeaderDoesNotMarkServersDown(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{WorkerTTL: time.Second})
	c.Stop(c.Leader())
	leader := c.Leader()
	client := c.Client(c.Running()...)
	ctx := context.Background()
	testcluster.Eventually(t, 20*time.Second, "the new leader registered in the ledger", func() bool {
		peers, err := client.Peers(ctx)
		return err == nil && peerState(peers, leader.ID) == api.PeerAlive
	})
	var peers []api.Peer
	for _, ghost := range []string{"ghost1", "ghost2"} {
		if _, err := client.Heartbeat(ctx, &api.HeartbeatRequest{Worker: ghost, Cores: 1}); err != nil {
			t.Fatal(err)
		}
		testcluster.Eventually(t, 20*time.Second, ghost+" marked down", func() bool {
			var err error
			peers, err = client.Peers(ctx)
			return err == nil && peerState(peers, ghost) == api.PeerDown
		})
	}
	for _, n := range c.Running() {
		if st := peerState(peers, n.ID); st != api.PeerAlive {
			t.Fatalf("running server %s is %q a TTL after the failover: %+v", n.ID, st, peers)
		}
	}
}
