package replicatest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

func TestMain(m *testing.M) {
	wasm.MaybeRunExecutor()
	os.Exit(m.Run())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// emptyGrid is a dev grid with no worker of its own: tests add theirs.
func emptyGrid(t *testing.T) *devgrid.Grid {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// tinySpec is a job of n tasks of the tiny module, which prints its args:
// with args [tag, "{index}"] task i prints "tag i\n".
func tinySpec(t *testing.T, c *client.Client, tag string, n int) tasks.JobSpec {
	t.Helper()
	mod := examples.Tiny()
	if err := c.PutBlob(context.Background(), storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	return tasks.JobSpec{Name: tag, ModuleHash: storage.Hash(mod), Args: []string{tag, "{index}"}, Tasks: n,
		Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}
}

// truth is what the tiny module prints for an assignment of a tinySpec job.
func truth(a *api.Assignment) []byte { return fmt.Appendf(nil, "%s %d\n", a.Args[0], a.Index) }

func submit(ctx context.Context, t *testing.T, c *client.Client, spec tasks.JobSpec) string {
	t.Helper()
	id, err := c.Submit(ctx, &spec)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wait waits for a job to finish and returns its status with every task.
func wait(ctx context.Context, t *testing.T, c *client.Client, id string) *api.JobStatus {
	t.Helper()
	if _, err := c.WaitJob(ctx, id, 5*time.Millisecond, nil); err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func peer(ctx context.Context, t *testing.T, c *client.Client, id string) api.Peer {
	t.Helper()
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no peer %s", id)
	return api.Peer{}
}

// agreedHash is the hash Q or more replicas of a task agree on ("" if none).
func agreedHash(ts api.TaskStatus, quorum int) string {
	n := map[string]int{}
	for _, r := range ts.Replicas {
		if r.Verdict == api.VerdictAgreed {
			n[r.Hash]++
		}
	}
	for h, k := range n {
		if k >= quorum && h != "" {
			return h
		}
	}
	return ""
}

// hashOf is the vote of a successful result with stdout b.
func hashOf(b []byte) string {
	return tasks.ResultHash(0, (&tasks.Result{Stdout: b}).StdoutSum())
}

// poll fails the test unless cond holds before the deadline.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // the polling interval
	}
}
