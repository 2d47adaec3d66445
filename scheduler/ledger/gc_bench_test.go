package ledger

// Benchmarks of garbage collection's ledger work on a ledger with big jobs:
// 20 finished jobs of 10k tasks, every 4th task's stdout an erasure-coded
// result blob (50k manifests), plus 10k unreferenced inline blobs, all
// built through Apply as Raft would.
//
//	go test -run '^$' -bench 'BenchmarkGC' -benchmem ./scheduler/
//
// garbage runs under the ledger's read lock on every GC pass; the
// delete-blobs Apply runs under its write lock, stalling every other Apply.

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

const (
	gcBenchJobs    = 20
	gcBenchTasks   = 10_000
	gcBenchEvery   = 4 // every gcBenchEvery-th task has a result blob
	gcBenchGarbage = 10_000
	gcBenchBatch   = 100 // blobs per delete-blobs command
)

var (
	gcBenchOnce sync.Once
	gcBenchFSM  *FSM
	gcBenchIdx  uint64
	gcBenchJunk []PutBlobCommand
)

// gcBenchLedger builds the shared big-jobs ledger once.
func gcBenchLedger(tb testing.TB) (*FSM, *uint64, []PutBlobCommand) {
	gcBenchOnce.Do(func() {
		f := NewFSM()
		idx := &gcBenchIdx
		fsmApply(tb, f, idx, &PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule, Now: 10})
		r := rand.New(rand.NewPCG(3, 4))
		for j := range gcBenchJobs {
			gcBenchJob(tb, f, idx, r, j)
		}
		for i := range gcBenchGarbage {
			data := fmt.Appendf(nil, "garbage %d", i)
			c := PutBlobCommand{Hash: storage.Hash(data), Data: data, Now: 10}
			fsmApply(tb, f, idx, &c)
			gcBenchJunk = append(gcBenchJunk, c)
		}
		gcBenchFSM = f
	})
	if gcBenchFSM == nil {
		tb.Fatal("building the GC benchmark ledger failed")
	}
	return gcBenchFSM, &gcBenchIdx, gcBenchJunk
}

// gcBenchJob submits job j, leases all its tasks and completes them, every
// gcBenchEvery-th with a result blob whose manifest it puts first.
func gcBenchJob(tb testing.TB, f *FSM, idx *uint64, r *rand.Rand, j int) {
	id := fmt.Sprintf("job-%02d", j)
	spec := tasks.JobSpec{Name: id, ModuleHash: storage.Hash(testModule), Tasks: gcBenchTasks, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := fsmApply(tb, f, idx, &SubmitJobCommand{ID: id, Spec: spec, Now: 10}); resp != id {
		tb.Fatalf("submit: %v", resp)
	}
	grants, _ := fsmApply(tb, f, idx, &LeaseTasksCommand{Worker: "w", Max: gcBenchTasks, Now: 10}).([]Grant)
	reports := make([]api.Report, len(grants))
	for i, g := range grants {
		reports[i] = api.Report{TaskRef: g.Ref()}
		if g.Index%gcBenchEvery == 0 {
			man := storagetest.RandomManifest(r, 1_000_000+j*gcBenchTasks+g.Index, benchPeers, 0)
			fsmApply(tb, f, idx, &PutManifestCommand{Manifest: man, Now: 10})
			reports[i].StdoutBlob = man.Hash
		}
	}
	fsmApply(tb, f, idx, &CompleteTasksCommand{Worker: "w", Now: 20, Reports: reports})
	if jb := f.ledger.jobs[id]; jb.nDone != gcBenchTasks {
		tb.Fatalf("job %s: %d of %d tasks done", id, jb.nDone, gcBenchTasks)
	}
}

// BenchmarkGC measures garbage (the read-locked scan of a GC pass) and
// the delete-blobs Apply of one batch of unreferenced blobs (put back,
// untimed, after each).
func BenchmarkGC(b *testing.B) {
	f, idx, garbage := gcBenchLedger(b)
	b.Run("garbage", func(b *testing.B) {
		for b.Loop() {
			f.View(func(l *Ledger) {
				if g := l.Garbage(100); len(g) != gcBenchGarbage {
					b.Fatalf("garbage %d, want %d", len(g), gcBenchGarbage)
				}
			})
		}
	})
	b.Run("delete-batch", func(b *testing.B) {
		batch := garbage[:gcBenchBatch]
		hashes := make([]string, len(batch))
		for i := range batch {
			hashes[i] = batch[i].Hash
		}
		for b.Loop() {
			deleted, _ := fsmApply(b, f, idx, &DeleteBlobsCommand{Hashes: hashes}).([]string)
			if len(deleted) != len(hashes) {
				b.Fatalf("deleted %d of %d", len(deleted), len(hashes))
			}
			b.StopTimer()
			for i := range batch {
				fsmApply(b, f, idx, &batch[i])
			}
			b.StartTimer()
		}
	})
}
