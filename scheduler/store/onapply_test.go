package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/scheduler/ledger"
)

// TestStore_OnApplySeesTheReplayedLog: a store reopened over a log calls
// Config.OnApply for what Raft replays at start. The hook is in place
// before Raft runs (a hook set after Open raced with that replay: the race
// detector caught it on a restarted server).
func TestStore_OnApplySeesTheReplayedLog(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openTestStore(t, dir, addr)
	for range 3 {
		// A rule error still commits the entry and applies it.
		if _, err := s.Propose(context.Background(), &ledger.CancelJobCommand{ID: "nope"}); !errors.Is(err, ledger.ErrJobNotFound) {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var applied atomic.Int64
	s2, err := Open(Config{ID: "s1", DataDir: dir, RaftBind: addr, Fast: true, SnapshotThreshold: 64,
		OnApply: func() { applied.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for applied.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("OnApply called %d times after a restart over 3 commands, want at least 3", applied.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
