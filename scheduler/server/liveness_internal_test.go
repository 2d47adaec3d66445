package server

import (
	"fmt"
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
	lv.heard(nil, "w1", t0, 0, false) // a lease: no running count
	if _, ok := lv.reported("w1"); ok {
		t.Fatal("a lease reported a running count")
	}
	lv.heard(nil, "w1", t0.Add(time.Second), 3, true)
	lv.heard(nil, "w1", t0.Add(2*time.Second), 0, false)
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
	lv.heard(nil, "w3", t0, 2, true)
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
	lv.heard(nil, "w1", time.Now(), 0, true)
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

// TestLiveness_KeptRecordFollowsItsWorker: a stream's kept record is
// written in place only while it is its worker's. Once the worker is
// forgotten (marked down, cut off) or a new leader resets liveness, or the
// stream speaks for another worker, the next heartbeat goes through the
// map as one without a kept record does: the worker is known again with a
// fresh record, the dropped record takes no write, and a forgotten worker
// that sends nothing stays forgotten.
func TestLiveness_KeptRecordFollowsItsWorker(t *testing.T) {
	lv := newLiveness()
	t0 := time.Now()
	var keep keptRecord
	lv.heard(&keep, "w1", t0, 1, true)
	first := keep.rec
	lv.heard(&keep, "w1", t0.Add(time.Second), 2, true)
	if keep.rec != first {
		t.Fatal("a second heartbeat of the same worker did not write its kept record")
	}
	if n, ok := lv.reported("w1"); !ok || n != 2 {
		t.Fatalf("reported %d %v, want 2 (written through the kept record)", n, ok)
	}

	lv.forget("w1")
	if _, ok := lv.lastSeen("w1"); ok {
		t.Fatal("a forgotten worker is known while it sends nothing")
	}
	lv.heard(&keep, "w1", t0.Add(2*time.Second), 3, true)
	if keep.rec == first || first.running != 2 {
		t.Fatalf("after forget the dropped record was written (running %d) or kept", first.running)
	}
	if seen, ok := lv.lastSeen("w1"); !ok || !seen.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after forget and a heartbeat: last seen %v %v, want %v", seen, ok, t0.Add(2*time.Second))
	}

	second := keep.rec
	lv.resetAll(t0.Add(3*time.Second), []string{"w1"})
	lv.heard(&keep, "w1", t0.Add(4*time.Second), 4, true)
	if keep.rec == second || second.running != 3 {
		t.Fatal("after resetAll the old leadership's record was written or kept")
	}
	if n, ok := lv.reported("w1"); !ok || n != 4 {
		t.Fatalf("after resetAll and a heartbeat: reported %d %v, want 4", n, ok)
	}

	lv.heard(&keep, "w2", t0.Add(5*time.Second), 5, true)
	if keep.id != "w2" {
		t.Fatalf("kept %q after a heartbeat for w2", keep.id)
	}
	if n, _ := lv.reported("w1"); n != 4 {
		t.Fatalf("w2's heartbeat wrote w1's record: w1 reports %d", n)
	}
	if n, ok := lv.reported("w2"); !ok || n != 5 {
		t.Fatalf("w2 reported %d %v, want 5", n, ok)
	}
}

// BenchmarkLiveness_Heard: a heartbeat's liveness write at 10,000
// workers, looked up in the map (requests, or a stream carrying many
// workers' heartbeats) and through a stream's kept record.
func BenchmarkLiveness_Heard(b *testing.B) {
	lv := newLiveness()
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("w-%05d", i)
		lv.heard(nil, ids[i], time.Now(), 0, true)
	}
	now := time.Now()
	b.Run("map", func(b *testing.B) {
		i := 0
		for b.Loop() {
			lv.heard(nil, ids[i%len(ids)], now, 1, true)
			i += 7919 // a stride past the caches, as 10,000 workers' heartbeats are
		}
	})
	b.Run("kept", func(b *testing.B) {
		keeps := make([]keptRecord, len(ids))
		for i := range keeps {
			lv.heard(&keeps[i], ids[i], now, 1, true)
		}
		i := 0
		for b.Loop() {
			j := i % len(ids)
			lv.heard(&keeps[j], ids[j], now, 1, true)
			i += 7919
		}
	})
}
