package server_test

import (
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/tasks"
)

// Ledger command type bytes the gate tests count: the JSON lease and
// complete commands, and their compact shapes.
const (
	typeLeaseJSON       = 4
	typeCompleteJSON    = 14
	typeLeaseCompact    = 34
	typeCompleteCompact = 35
)

// olderTypes is what a server from before the compact commands applies.
func olderTypes() []int {
	return slices.DeleteFunc(ledger.KnownCommandTypes(), func(t int) bool {
		return slices.Contains(ledger.CompactCommandTypes(), t)
	})
}

// runEchoJob runs an n-task job to completion through the cluster (its
// results are checked by the servers converging on one ledger).
func runEchoJob(t *testing.T, c *testcluster.Cluster, n int) {
	t.Helper()
	all := c.Client(c.Running()...)
	id := submitEcho(t, all, n)
	sum := jobcheck.WaitJob(t, all, id, time.Minute, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete {
		t.Fatalf("job ended %s: %+v", sum.State, sum)
	}
}

func applied(n *testcluster.Node, t int) uint64 { return n.Server.Store().FSM().AppliedOfType(t) }

// TestCommandGate_MixedGroupKeepsProposingJSON: while one server of three
// does not say it applies the compact command types, every lease and
// completion is committed in its JSON shape; once that server is upgraded,
// the leader switches to the compact shapes, and all servers end on one
// ledger.
func TestCommandGate_MixedGroupKeepsProposingJSON(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{CommandTypes: map[string][]int{"s3": olderTypes()}})
	// 20 ms a task, two at a time: the job takes two seconds, over which a
	// gate that let compact commands through would have done so.
	startWorker(t, "w1", c.Client(c.Nodes...), 20*time.Millisecond)
	runEchoJob(t, c, 200)
	c.WaitConverged()
	for _, n := range c.Nodes {
		if applied(n, typeLeaseCompact)+applied(n, typeCompleteCompact) != 0 {
			t.Fatalf("%s applied compact commands in a group with an older server", n.ID)
		}
		if applied(n, typeLeaseJSON) == 0 || applied(n, typeCompleteJSON) == 0 {
			t.Fatalf("%s applied no JSON leases (%d) or completions (%d)", n.ID, applied(n, typeLeaseJSON), applied(n, typeCompleteJSON))
		}
	}
	if c.Leader().Server.Store().CompactCommands() {
		t.Fatal("the leader proposes compact commands with an older server in the group")
	}

	old := c.Nodes[2]
	c.Stop(old)
	old.CommandTypes = nil // upgraded
	c.Restart(old)
	testcluster.Eventually(t, 30*time.Second, "the leader to switch to compact commands", func() bool {
		return c.Leader().Server.Store().CompactCommands()
	})
	runEchoJob(t, c, 150) // another size: the result cache would answer the same job at submit
	c.WaitConverged()
	for _, n := range c.Nodes {
		if applied(n, typeLeaseCompact) == 0 || applied(n, typeCompleteCompact) == 0 {
			t.Fatalf("%s applied no compact leases (%d) or completions (%d) after the upgrade", n.ID, applied(n, typeLeaseCompact), applied(n, typeCompleteCompact))
		}
	}
	c.WaitConverged()
}

// TestCommandGate_OlderServerJoiningTurnsCompactOff: a group of current
// servers proposes compact commands; a server that joins without saying it
// applies them turns them off before it is added.
func TestCommandGate_OlderServerJoiningTurnsCompactOff(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{CommandTypes: map[string][]int{"s2": olderTypes()}})
	leader := c.Leader()
	testcluster.Eventually(t, 30*time.Second, "compact commands on", func() bool { return leader.Server.Store().CompactCommands() })
	joined := c.AddServer()
	testcluster.Eventually(t, 30*time.Second, "compact commands off", func() bool { return !c.Leader().Server.Store().CompactCommands() })
	before := applied(joined, typeLeaseCompact)
	startWorker(t, "w1", c.Client(c.Nodes...), 0)
	runEchoJob(t, c, 50)
	c.WaitConverged()
	if got := applied(joined, typeLeaseCompact); got != before {
		t.Fatalf("compact leases went from %d to %d after an older server joined", before, got)
	}
	if applied(joined, typeLeaseJSON) == 0 {
		t.Fatal("no JSON leases after an older server joined")
	}
}
