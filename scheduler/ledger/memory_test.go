package ledger

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizer-held memory for the second
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLedger_PurgeGivesTheMemoryBack submits a 1M-task job, leases a fifth
// of it, completes some, cancels it while a snapshot holds it (so chunks
// are copied on write) and purges it, and checks the live heap is back within
// a margin of where it started: nothing the job made (task chunks, lease
// and request-id entries, the maps that grew to hold them) stays behind,
// and the memory goes back to the OS without waiting for a collection.
func TestLedger_PurgeGivesTheMemoryBack(t *testing.T) {
	const n, leased = 1_000_000, 200_000
	a := newApplier(t)
	before := heapInUse()
	if held := heldFromOS(); held > before+64<<20 {
		t.Fatalf("the heap holds %.1f MiB from the OS before the job", mib(held))
	}

	spec := tasks.JobSpec{Name: "huge", ModuleHash: storage.Hash(testModule), Tasks: n, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := a.apply(&SubmitJobCommand{ID: "huge", Spec: spec, Now: a.now, RequestID: "r-huge"}); resp != "huge" {
		t.Fatalf("submit: %v", resp)
	}
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	grants := a.lease("w1", leased)
	if len(grants) != leased {
		t.Fatalf("leased %d, want %d", len(grants), leased)
	}
	for _, g := range grants[:1000] {
		a.complete("w1", g, "")
	}
	snap := a.fsm.Snapshot() // a snapshot streaming while the job is cancelled: its chunks are copied on write
	peak := heapInUse()
	a.apply(&CancelJobCommand{ID: "huge", Now: a.now})
	runtime.KeepAlive(snap)
	if resp := a.apply(&PurgeJobCommand{ID: "huge"}); resp != nil {
		t.Fatalf("purge: %v", resp)
	}
	wantHeldFromOSBelow(t, before+64<<20, 10*time.Second)
	after := heapInUse()
	t.Logf("live heap: %.1f MiB before, %.1f MiB with the job, %.1f MiB after its purge",
		mib(before), mib(peak), mib(after))
	const margin = 4 << 20
	if after > before+margin {
		t.Fatalf("after the purge the heap holds %.1f MiB more than before the job (margin %.0f MiB)",
			mib(after-before), mib(margin))
	}
	if peak < before+64<<20 {
		t.Fatalf("the job took only %.1f MiB: the test no longer measures a large job", mib(peak-before))
	}
	runtime.KeepAlive(a)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// heldFromOS is the heap memory the process holds from the OS (what RSS
// the heap accounts for): mapped, minus what was given back.
func heldFromOS() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapSys - ms.HeapReleased
}

// wantHeldFromOSBelow waits until the heap holds less than limit from the
// OS: a purge must give a large job's memory back to the OS, not only to
// the Go heap (an idle server may run no collection for minutes).
func wantHeldFromOSBelow(t *testing.T, limit uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		held := heldFromOS()
		if held < limit {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the purge the heap still holds %.1f MiB from the OS (want under %.1f MiB)", within, mib(held), mib(limit))
		}
		time.Sleep(50 * time.Millisecond) // polling the runtime, not waiting for the ledger
	}
}

// TestLedger_FinishedTaskHeapIsBounded: a finished tiny task costs the live
// heap its record (80 bytes, taskrecord.go, its content seed included),
// its stdout in its chunk's arena (about 8) and its result-cache item
// (16-18, cacheindex.go): 106 bytes measured (98 before the kept seed),
// the same after a snapshot restore, against 160 with an 88-byte record,
// a slice per stdout and a map for the cache (issue 15: at most 250 bytes
// of RSS a task, which the GC's headroom doubles at worst). The bound has
// 8% of margin: a stdout back in a slice of its own (+24 bytes) would
// fail it; a Go map for the cache would not at this
// size (its load happens to be high at 100,000: 103 bytes), so
// TestCacheIndex_AgreesWithAMapThroughGrowthAndPurges checks the index's
// density itself. A task that pointed into its decoded report
// (its exit code did) kept the whole batch of reports alive: 460 bytes a
// task.
func TestLedger_FinishedTaskHeapIsBounded(t *testing.T) {
	const n, bound = 100_000, 115
	a := newApplier(t)
	for i := range 4 {
		a.apply(&UpsertPeerCommand{ID: fmt.Sprintf("worker-%02d-5f1c9a7e", i), Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	}
	before := heapInUse()
	spec := tasks.JobSpec{Name: "tiny", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := a.apply(&SubmitJobCommand{ID: "tiny", Spec: spec, Now: a.now, RequestID: "r-tiny"}); resp != "tiny" {
		t.Fatalf("submit: %v", resp)
	}
	for done := 0; done < n; {
		w := fmt.Sprintf("worker-%02d-5f1c9a7e", done/256%4)
		grants := a.lease(w, 256)
		reports := make([]api.Report, len(grants))
		for i, g := range grants {
			reports[i] = api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(fmt.Sprintf("%d\n", g.Index)),
				Duration: time.Millisecond, Engine: tasks.EngineWasmtime}}
		}
		a.apply(&CompleteTasksCommand{Worker: w, Now: a.now, Reports: reports})
		done += len(grants)
	}
	live := perTask(heapInUse()-before, n)

	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	a.fsm = nil
	before = heapInUse()
	restored := NewFSM()
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	afterRestore := perTask(heapInUse()-before, n)
	runtime.KeepAlive(&buf) // counted in before: held until after
	runtime.KeepAlive(restored)
	t.Logf("heap per finished task: %.0f bytes applied, %.0f restored", live, afterRestore)
	if live > bound || afterRestore > bound {
		t.Fatalf("heap per finished task: %.0f bytes applied, %.0f restored; want at most %d", live, afterRestore, bound)
	}
}

func perTask(bytes uint64, n int) float64 { return float64(bytes) / float64(n) }

// TestSnapshot_RestoredLedgerNumbersTheNextJobAsBefore: with the newest job
// purged, a ledger restored from a snapshot gives the next job the same
// sequence number as the ledger the snapshot came from, so the two stay
// the same state (a restored follower did not, before the header carried
// next_seq). A snapshot with no gap writes the header it always did.
func TestSnapshot_RestoredLedgerNumbersTheNextJobAsBefore(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 0, 0)
	a.submit("j2", 1, 0, 0)
	var plain bytes.Buffer
	if err := a.fsm.Snapshot().Write(&plain); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Bytes(), []byte("next_seq")) {
		t.Fatalf("a snapshot without a purged newest job carries next_seq: %q", plain.Bytes()[:40])
	}
	a.apply(&CancelJobCommand{ID: "j2", Now: a.now})
	if resp := a.apply(&PurgeJobCommand{ID: "j2"}); resp != nil {
		t.Fatalf("purge: %v", resp)
	}
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	restored := NewFSM()
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	b := &applier{t: t, fsm: restored, now: a.now}
	a.submit("j3", 1, 0, 0)
	b.submit("j3", 1, 0, 0)
	if got, want := restored.StateHash(), a.fsm.StateHash(); got != want {
		t.Fatalf("after the same submit the restored ledger is in state %s, the original in %s", got, want)
	}
}
