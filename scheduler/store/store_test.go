package store

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

var testModule = append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, "test module"...)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func openTestStore(t *testing.T, dir, addr string) *Store {
	t.Helper()
	s, err := Open(Config{ID: "s1", DataDir: dir, RaftBind: addr, Bootstrap: true, Fast: true, SnapshotThreshold: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !s.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("single voter did not become leader")
		case <-time.After(5 * time.Millisecond):
		}
	}
	return s
}

func mustPropose(t *testing.T, s *Store, c ledger.Command) any {
	t.Helper()
	resp, err := s.Propose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestStore_RestartKeepsLedger commits a job and results through Raft, with
// enough entries to cross the snapshot threshold, closes the store and opens
// it again from the same directory.
func TestStore_RestartKeepsLedger(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openTestStore(t, dir, addr)
	mustPropose(t, s, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	mustPropose(t, s, &ledger.SubmitJobCommand{ID: "j1", Now: 1, Spec: tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule),
		Tasks: 100, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1024}})
	for i := 0; i < 100; i++ {
		g := mustPropose(t, s, &ledger.LeaseTasksCommand{Worker: "w", Max: 1, Now: 2}).([]ledger.Grant)
		mustPropose(t, s, &ledger.CompleteTasksCommand{Worker: "w", Now: 3, Reports: []api.Report{{TaskRef: g[0].Ref(), Result: tasks.Result{Stdout: []byte("ok")}}}})
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustPropose(t, s, &ledger.UpsertPeerCommand{ID: "w", State: "alive"}) // an entry after the snapshot
	want := s.FSM().StateHash()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTestStore(t, dir, addr)
	defer s2.Close()
	if err := s2.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s2.FSM().StateHash(); got != want {
		t.Fatalf("state after restart %s, want %s", got, want)
	}
	var done int
	s2.FSM().View(func(l *ledger.Ledger) { sum, _ := l.JobSummary("j1"); done = sum.Done })
	if done != 100 {
		t.Fatalf("done after restart = %d, want 100", done)
	}
}

func TestStore_BatchesConcurrentProposals(t *testing.T) {
	s := openTestStore(t, t.TempDir(), freeAddr(t))
	defer s.Close()
	mustPropose(t, s, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	mustPropose(t, s, &ledger.SubmitJobCommand{ID: "j1", Now: 1, Spec: tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule),
		Tasks: 2000, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1024}})
	before := s.Raft().LastIndex()
	errs := make(chan error, 2000)
	for i := 0; i < 2000; i++ {
		go func() {
			_, err := s.Propose(context.Background(), &ledger.LeaseTasksCommand{Worker: "w", Max: 1, Now: 2})
			errs <- err
		}()
	}
	for i := 0; i < 2000; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var leased int
	s.FSM().View(func(l *ledger.Ledger) { sum, _ := l.JobSummary("j1"); leased = sum.Leased })
	if leased != 2000 {
		t.Fatalf("leased %d, want 2000", leased)
	}
	if entries := s.Raft().LastIndex() - before; entries >= 2000 {
		t.Fatalf("2000 proposals took %d Raft entries: no batching", entries)
	}
}
