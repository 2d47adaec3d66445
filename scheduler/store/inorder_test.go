package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// TestStore_ProposeInOrderAppliesInTheOrderGiven: commands proposed
// together apply in order, every time (a lease proposed after a job's
// submit is granted that job's task), each answered as Propose answers
// it; a rule error in one does not stop the next.
func TestStore_ProposeInOrderAppliesInTheOrderGiven(t *testing.T) {
	s := openTestStore(t, t.TempDir(), freeAddr(t))
	defer s.Close()
	mustPropose(t, s, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	for round := range 20 {
		id := fmt.Sprintf("j%d", round)
		submit := &ledger.SubmitJobCommand{ID: id, Now: 1, Spec: tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule),
			Tasks: 1, Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1024}}
		cancelMissing := &ledger.CancelJobCommand{ID: "nope"}
		lease := &ledger.LeaseTasksCommand{Worker: "w", Max: 1, Now: 2}
		resps, errs := s.ProposeInOrder(context.Background(), submit, cancelMissing, lease)
		if errs[0] != nil || resps[0] != id {
			t.Fatalf("round %d: submit answered %v, %v", round, resps[0], errs[0])
		}
		if !errors.Is(errs[1], ledger.ErrJobNotFound) || resps[1] != nil {
			t.Fatalf("round %d: cancel of a missing job answered %v, %v; want its rule error", round, resps[1], errs[1])
		}
		if g, _ := resps[2].([]ledger.Grant); errs[2] != nil || len(g) != 1 || g[0].Job != id {
			t.Fatalf("round %d: lease after the submit answered %+v, %v; want the new job's task", round, resps[2], errs[2])
		}
	}
}

// TestStore_ProposeInOrderOnAFollowerProposesNothing: a store that does
// not lead answers every command with ErrNotLeader and ErrNotProposed.
func TestStore_ProposeInOrderOnAFollowerProposesNothing(t *testing.T) {
	s := openTestStore(t, t.TempDir(), freeAddr(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, errs := s.ProposeInOrder(context.Background(), &ledger.CancelJobCommand{ID: "a"}, &ledger.CancelJobCommand{ID: "b"})
	for i, err := range errs {
		if !errors.Is(err, ErrNotLeader) || !errors.Is(err, ErrNotProposed) {
			t.Fatalf("command %d: %v, want not leader, not proposed", i, err)
		}
	}
}
