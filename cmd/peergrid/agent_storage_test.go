package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/internal/testcluster"
)

// syncBuffer is a bytes.Buffer safe to write from the agent and read here.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs `peergrid agent` in-process as a lone server with the
// given extra flags and returns a client once the server leads and has
// registered itself, and the data dir.
func startAgent(t *testing.T, extra ...string) (*client.Client, string) {
	t.Helper()
	dir, bind := t.TempDir(), proctest.FreeAddr(t)
	args := append([]string{"agent", "--server", "--data-dir", dir, "--bind", bind, "--raft-bind", proctest.FreeAddr(t),
		"--name", "s1", "--worker-ttl", "2s", "--log-level", "error"}, extra...)
	var out, errb syncBuffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("agent %v exited %d: %s", extra, code, errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent %v did not stop", extra)
		}
	})
	// Until the server leads and has committed its own registration, a
	// call waits for a leader (up to 4 s) and is retried by the client; and
	// under -race, with other packages' tests fsyncing on two cores, the
	// bootstrap's Raft commits have been seen to take most of 20 s. So each
	// probe is bounded on its own, the deadline is generous, and a timeout
	// says what the last probe saw.
	started := time.Now()
	var c *client.Client
	var last string
	deadline := time.Now().Add(agentStartTimeout)
	for {
		select {
		case code := <-done:
			t.Fatalf("agent %v exited %d: %s", extra, code, errb.String())
		default:
		}
		if c == nil {
			c = agentClient(bind, dir)
		}
		if c != nil {
			ok, seen := serverRegistered(c)
			if ok {
				t.Logf("agent %v: the server led and registered itself after %s", extra, time.Since(started).Round(time.Millisecond))
				return c, dir
			}
			last = seen
		} else {
			last = "no token and CA in the data dir yet"
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for the agent's server to lead and register itself; last: %s; agent stderr: %s", agentStartTimeout, last, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentStartTimeout bounds a lone agent's start in these tests: generous,
// as a slow start under load is not what they test.
const agentStartTimeout = 90 * time.Second

// agentClient is a client of the lone agent in dir, once it has written
// its token and CA (nil before).
func agentClient(bind, dir string) *client.Client {
	b, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return nil
	}
	return pinnedAgentClient(bind, strings.TrimSpace(string(b)), dir)
}

// serverRegistered asks once, within 5 s, whether the agent's server leads
// and is listed as a peer; it says what it saw otherwise.
func serverRegistered(c *client.Client) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peers, err := c.Peers(ctx)
	switch {
	case err != nil:
		return false, err.Error()
	case len(peers) == 0 || peers[0].ID != "s1" || !slices.Contains(peers[0].Roles, api.RoleServer):
		return false, fmt.Sprintf("peers %+v", peers)
	}
	return true, ""
}

// TestAgent_ServerWithStorageFlagIsAStoragePeer: `agent --server --storage`
// runs a storage-only peer under the server's id: it shows as one peer with
// roles server and storage at the server's API address, and is listed as a
// storage peer at its shard address. A plain --server keeps no shards (the
// --storage default is for workers).
func TestAgent_ServerWithStorageFlagIsAStoragePeer(t *testing.T) {
	t.Run("server --storage", func(t *testing.T) {
		c, _ := startAgent(t, "--storage", "--storage-bind", "127.0.0.1:0")
		ctx := context.Background()
		var sps []api.StoragePeer
		testcluster.Eventually(t, agentStartTimeout, "the server's storage peer registered", func() bool {
			var err error
			sps, err = c.StoragePeers(ctx, false)
			return err == nil && len(sps) == 1
		})
		if sps[0].ID != "s1" || sps[0].Address == c.Addr || sps[0].Address == "" {
			t.Fatalf("storage peers %+v: want s1 at its shard address, not the API's %s", sps, c.Addr)
		}
		peers, err := c.Peers(ctx)
		if err != nil || len(peers) != 1 {
			t.Fatalf("peers %+v %v: want one line for the server", peers, err)
		}
		if p := peers[0]; !slices.Equal(p.Roles, []string{api.RoleServer, api.RoleStorage}) || p.Address != c.Addr || p.State != api.PeerAlive {
			t.Fatalf("the server's line: %+v", p)
		}
	})
	for _, flags := range [][]string{nil, {"--storage=false"}} {
		t.Run("server "+strings.Join(flags, " "), func(t *testing.T) {
			c, dir := startAgent(t, flags...)
			sps, err := c.StoragePeers(context.Background(), true)
			if err != nil || len(sps) != 0 {
				t.Fatalf("storage peers of a plain server: %+v %v", sps, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "worker", "shards")); !os.IsNotExist(err) {
				t.Fatalf("a plain server opened a shard store: %v", err)
			}
		})
	}
}

// TestDefaultStorageBind: a storage peer whose servers are all on loopback
// serves shards on loopback only; one with any server elsewhere serves on
// every interface, so peers on other machines can fetch its shards.
func TestDefaultStorageBind(t *testing.T) {
	for _, tc := range []struct {
		servers []string
		want    string
	}{
		{[]string{"http://127.0.0.1:7070", "http://localhost:7071"}, "127.0.0.1:0"},
		{[]string{"http://[::1]:7070"}, "127.0.0.1:0"},
		{[]string{"http://127.0.0.1:7070", "http://10.0.0.2:7070"}, ":0"},
		{[]string{"http://grid.example.org:7070"}, ":0"},
	} {
		if got := defaultStorageBind(tc.servers); got != tc.want {
			t.Fatalf("servers %v: %q, want %q", tc.servers, got, tc.want)
		}
	}
}

// pinnedAgentClient is a client of the lone agent whose data dir is dir,
// trusting the CA it made (nil until it has made one).
func pinnedAgentClient(addr, token, dir string) *client.Client {
	ca, err := auth.LoadCACert(filepath.Join(dir, "server", "tls"))
	if err != nil {
		return nil
	}
	c := client.New(addr, token)
	c.Pin(auth.Pin{CA: ca})
	return c
}
