package server

import (
	"slices"
	"testing"
	"time"
)

// TestLiveness_OneRecordAWorker: a heartbeat records when its worker was
// heard from and what it runs; a lease or report moves only the time; a
// worker is silent past a cutoff only if unheard since; forget and
// resetAll drop what a new leader must not know.
func TestLiveness_OneRecordAWorker(t *testing.T) {
	lv := newLiveness()
	t0 := time.Now()
	lv.heard("w1", t0, 0, false) // a lease: no running count
	if _, ok := lv.reported("w1"); ok {
		t.Fatal("a lease reported a running count")
	}
	lv.heard("w1", t0.Add(time.Second), 3, true)
	lv.heard("w1", t0.Add(2*time.Second), 0, false)
	if n, ok := lv.reported("w1"); !ok || n != 3 {
		t.Fatalf("reported %d %v after a heartbeat saying 3 then a lease, want 3", n, ok)
	}
	if seen, ok := lv.lastSeen("w1"); !ok || !seen.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("last seen %v %v, want %v", seen, ok, t0.Add(2*time.Second))
	}
	lv.touchUnknown([]string{"w1", "w2"}, t0.Add(5*time.Second))
	if seen, _ := lv.lastSeen("w1"); !seen.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("touchUnknown moved a known worker's clock to %v", seen)
	}
	if got := lv.silentSince(t0.Add(4 * time.Second)); !slices.Equal(got, []string{"w1"}) {
		t.Fatalf("silent since t0+4s: %v, want [w1]", got)
	}
	lv.forget("w1")
	if _, ok := lv.lastSeen("w1"); ok {
		t.Fatal("a forgotten worker is still known")
	}
	lv.heard("w3", t0, 2, true)
	lv.resetAll(t0.Add(6*time.Second), []string{"w3"})
	if _, ok := lv.reported("w3"); ok {
		t.Fatal("a new leader kept a running count it never heard")
	}
}

// TestUntrackedPass_DueOnlyWhenAPeerCanBeUnknown: the leader lists the
// ledger's live peers for liveness at its first tick, then again only
// after the ledger changed or liveness forgot a worker (forget, resetAll):
// else every peer the ledger has alive is still known, and a pass would
// find none.
func TestUntrackedPass_DueOnlyWhenAPeerCanBeUnknown(t *testing.T) {
	lv := newLiveness()
	var last untrackedPass
	at := func(changes uint64) untrackedPass { return untrackedPass{changes: changes, forgets: lv.forgotten()} }
	if !last.due(at(7)) {
		t.Fatal("the first pass is not due")
	}
	last = at(7)
	last.done = true
	if last.due(at(7)) {
		t.Fatal("a pass is due with the ledger unchanged and nothing forgotten")
	}
	if !last.due(at(8)) {
		t.Fatal("a pass is not due after the ledger changed")
	}
	lv.heard("w1", time.Now(), 0, true)
	if last.due(at(7)) {
		t.Fatal("hearing from a worker made a pass due")
	}
	lv.forget("w1")
	if !last.due(at(7)) {
		t.Fatal("a pass is not due after liveness forgot a worker")
	}
	last = at(7)
	last.done = true
	lv.resetAll(time.Now(), nil)
	if !last.due(at(7)) {
		t.Fatal("a pass is not due after a new leader's resetAll")
	}
}
