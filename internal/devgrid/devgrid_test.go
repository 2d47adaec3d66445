package devgrid

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

func TestMain(m *testing.M) {
	wasm.MaybeRunExecutor()
	os.Exit(m.Run())
}

func startGrid(t *testing.T, dir string, noWorker bool) *Grid {
	return startGridAt(t, dir, noWorker, "", "")
}

// startGridAt starts a grid on given addresses ("" picks free ones), so a
// restart can come back where it was, as a real server would.
func startGridAt(t *testing.T, dir string, noWorker bool, bind, raftBind string) *Grid {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, Config{DataDir: dir, Cores: 2, NoWorker: noWorker, Bind: bind, RaftBind: raftBind})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func submitTiny(t *testing.T, c *client.Client, n int) string {
	return submitTinyB(t, c, n)
}

func submitTinyB(t testing.TB, c *client.Client, n int) string {
	t.Helper()
	ctx := context.Background()
	mod := examples.Tiny()
	hash := storage.Hash(mod)
	if err := c.PutBlob(ctx, hash, mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "echo", ModuleHash: hash, Args: []string{"task", "{index}", "of", "{count}"},
		Tasks: n, Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1,
		NoCache: true}) // a benchmark submits it again and again: run it each time
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDevGrid_EndToEndAndRestart submits a 200-task job through the HTTP API,
// checks every result against what the test computes, checks the ledger
// recorded each task done exactly once, then restarts the server from its data
// dir and finds the job and its results still there.
func TestDevGrid_EndToEndAndRestart(t *testing.T) {
	dir := t.TempDir()
	g := startGrid(t, dir, false)
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 200
	id := submitTiny(t, c, n)
	sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != tasks.JobComplete || sum.Done != n {
		t.Fatalf("job %s: %+v", id, sum)
	}
	checkResults(t, c, id, n)
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if done := workerDone(peers, "dev-worker"); done != n {
		t.Fatalf("ledger counted %d accepted completions, want exactly %d", done, n)
	}
	if err := g.Close(); err != nil { // the worker drains: that is committed too
		t.Fatal(err)
	}
	hash := g.Server.Store().FSM().StateHash()

	g2 := startGridAt(t, dir, true, strings.TrimPrefix(g.Addr, "https://"), g.RaftAddr)
	if err := g2.Server.Store().Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := g2.Server.Store().FSM().StateHash(); got != hash {
		t.Fatalf("ledger after restart differs: %s vs %s", got, hash)
	}
	checkResults(t, g2.Client(), id, n)
}

func checkResults(t *testing.T, c *client.Client, id string, n int) {
	t.Helper()
	results, err := c.Results(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for i, r := range results {
		want := fmt.Sprintf("task %d of %d\n", i, n)
		if r.Index != i || r.State != tasks.TaskDone || string(r.Stdout) != want || r.Attempts != 1 || r.Ignored != 0 {
			t.Fatalf("task %d: index %d state %s attempts %d late %d stdout %q, want %q",
				i, r.Index, r.State, r.Attempts, r.Ignored, r.Stdout, want)
		}
	}
}

func workerDone(peers []api.Peer, id string) int {
	for _, p := range peers {
		if p.ID == id {
			return p.Done
		}
	}
	return -1
}

func TestDevGrid_BadInputIsRefusedAndChangesNothing(t *testing.T) {
	g := startGrid(t, t.TempDir(), true)
	ctx := context.Background()
	c := g.Client()
	before := g.Server.Store().FSM().StateHash()

	notWasm := []byte("#!/bin/sh\necho hi\n")
	if err := c.PutBlob(ctx, storage.Hash(notWasm), notWasm); err != nil {
		t.Fatal(err)
	}
	_, err := c.Submit(ctx, &tasks.JobSpec{Name: "x", ModuleHash: storage.Hash(notWasm), Tasks: 1, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 400 || !contains(se.Message, "not WebAssembly") {
		t.Fatalf("non-wasm module: %v", err)
	}
	afterBlob := g.Server.Store().FSM().StateHash()

	wrong := g.ClientWith("wrong-token")
	if _, err := wrong.Jobs(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	none := g.ClientWith("")
	if err := none.PutBlob(ctx, storage.Hash([]byte("x")), []byte("x")); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	if err := c.PutBlob(ctx, storage.Hash([]byte("y")), []byte("not y")); err == nil || !contains(err.Error(), "hash mismatch") {
		t.Fatalf("mismatched blob: %v", err)
	}
	if got := g.Server.Store().FSM().StateHash(); got != afterBlob {
		t.Fatal("a refused request changed the ledger")
	}
	if before == afterBlob {
		t.Fatal("the accepted blob upload did not change the ledger (test is not measuring anything)")
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}

// TestDevGrid_WorkerWithWrongTokenIsRefused: a worker with a wrong token
// gets 401 on every call and leases nothing; the ledger is unchanged.
func TestDevGrid_WorkerWithWrongTokenIsRefused(t *testing.T) {
	g := startGrid(t, t.TempDir(), true)
	id := submitTiny(t, g.Client(), 3)
	before := g.Server.Store().FSM().StateHash()
	bad := g.ClientWith("not-the-token")
	_, err := bad.Lease(context.Background(), &api.LeaseRequest{Worker: "intruder", Max: 3})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 401 || !strings.Contains(se.Message, "token") {
		t.Fatalf("lease with a wrong token: %v", err)
	}
	if _, err := bad.Report(context.Background(), &api.ReportRequest{Worker: "intruder", Reports: []api.Report{{TaskRef: api.TaskRef{Job: id, Index: 0, Attempt: 1}}}}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("report with a wrong token: %v", err)
	}
	if _, err := bad.Heartbeat(context.Background(), &api.HeartbeatRequest{Worker: "intruder"}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("heartbeat with a wrong token: %v", err)
	}
	if got := g.Server.Store().FSM().StateHash(); got != before {
		t.Fatal("refused worker calls changed the ledger")
	}
}
