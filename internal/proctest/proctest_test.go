package proctest_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/proctest"
)

// TestCluster_ServersFormOneGroupAndRegisterAddresses: three agents started
// with --join and --bootstrap-expect 3 agree on one leader (StartServers
// waits for that) and each one's HTTP address reaches the ledger.
func TestCluster_ServersFormOneGroupAndRegisterAddresses(t *testing.T) {
	c := proctest.StartServers(t, 3, proctest.Options{})
	client := c.Client()
	proctest.Eventually(t, 30*time.Second, "every server's HTTP address in the ledger", func() bool {
		peers, err := client.Peers(context.Background())
		if err != nil {
			return false
		}
		n := 0
		for _, s := range c.Servers {
			for _, p := range peers {
				if p.ID == s.ID && p.Address == s.HTTPAddr {
					n++
				}
			}
		}
		return n == len(c.Servers)
	})
}

// TestProc_SignalAndWait: SIGTERM stops a server in order (exit 0), and
// Kill9 ends a process at once.
func TestProc_SignalAndWait(t *testing.T) {
	c := proctest.StartServers(t, 1, proctest.Options{})
	s := c.Servers[0]
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(10 * time.Second); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
	if !strings.Contains(s.Log(), "stopping") {
		t.Fatalf("no orderly stop in the log:\n%s", s.Log())
	}
	p := proctest.Start(t, "idle", "agent", "--server", "--data-dir", t.TempDir(), "--bind", proctest.FreeAddr(t),
		"--raft-bind", proctest.FreeAddr(t), "--token", proctest.Token)
	p.Kill9()
	if !p.Exited() || p.ExitCode() != -1 {
		t.Fatalf("after Kill9: exited %v, exit code %d", p.Exited(), p.ExitCode())
	}
}

// TestCluster_RestartedServerRejoinsFromItsDataDir: a follower killed with
// SIGKILL and started again without --join follows the same leader.
func TestCluster_RestartedServerRejoinsFromItsDataDir(t *testing.T) {
	c := proctest.StartServers(t, 3, proctest.Options{})
	leader := c.Leader(10 * time.Second)
	var follower *proctest.Server
	for _, s := range c.Servers {
		if s != leader {
			follower = s
		}
	}
	follower.Kill9()
	c.Restart(follower)
	proctest.Eventually(t, 30*time.Second, follower.ID+" follows "+leader.ID+" again", func() bool {
		st, err := follower.Status(context.Background())
		return err == nil && st.RaftState == "follower" && st.Leader == leader.ID
	})
}

// TestFreeAddr_NeverTheSameAddressTwice: the kernel may give a just-closed
// port out again, and a cluster whose HTTPS and Raft addresses collide
// cannot start (a CI run failed so). Many calls, no repeat.
func TestFreeAddr_NeverTheSameAddressTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		addr := proctest.FreeAddr(t)
		if seen[addr] {
			t.Fatalf("FreeAddr returned %s twice", addr)
		}
		seen[addr] = true
	}
}
