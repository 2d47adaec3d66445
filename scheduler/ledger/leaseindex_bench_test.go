package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkLeaseIndex_80kLeases is the scale benchmark's steady state
// (BenchmarkScale_10kWorkers: 10,000 workers holding 8 leases each) in the
// ledger alone: LeasesOf is finding one worker's leases (what a heartbeat,
// a worker marked down or revoked, and distrust ask), where a pass over
// every lease was what the leader's tick did for the forgotten-lease check
// before the index.
//
//	go test -run '^$' -bench 'LeaseIndex_80kLeases' ./scheduler/ledger/
func BenchmarkLeaseIndex_80kLeases(b *testing.B) {
	const workers, perWorker = 10_000, 8
	f := NewFSM()
	apply := func(c Command) any { return applyOne(b, f, c) }
	apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	spec := tasks.JobSpec{Name: "held", ModuleHash: storage.Hash(testModule), Tasks: workers * perWorker, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := apply(&SubmitJobCommand{ID: "held", Spec: spec, Now: 1}); resp != "held" {
		b.Fatal(resp)
	}
	ids := make([]string, workers)
	for i := range ids {
		ids[i] = fmt.Sprintf("w%05d", i)
		apply(&UpsertPeerCommand{ID: ids[i], Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: 1})
		if g, _ := apply(&LeaseTasksCommand{Worker: ids[i], Max: perWorker, Now: 2, Slack: int64(time.Hour)}).([]Grant); len(g) != perWorker {
			b.Fatalf("%s leased %d", ids[i], len(g))
		}
	}
	b.Run("LeasesOf", func(b *testing.B) {
		n := 0
		for i := 0; b.Loop(); i++ {
			f.View(func(l *Ledger) { n += len(l.LeasesOf(ids[i%workers])) })
		}
		if n != b.N*perWorker {
			b.Fatalf("found %d leases in %d calls", n, b.N)
		}
	})
}

// BenchmarkLeaseChurn_80kLeases is the scale benchmark's mix in the ledger
// alone: 10,000 workers hold 8 leases each of a 1,000,000-task job (result
// cache on, as there), and each round one worker's completion of its 8
// tasks and its next lease of 8 go through Apply in their compact shapes,
// as the leader proposes them: the ledger's share of a task's leader CPU
// (µs/task; the grant, the lease map and its index, the result cache).
//
//	go test -run '^$' -bench 'LeaseChurn_80kLeases' -benchtime 20000x ./scheduler/ledger/
func BenchmarkLeaseChurn_80kLeases(b *testing.B) {
	const workers, perWorker, total = 10_000, 8, 1_000_000
	f := NewFSM()
	apply := func(c Command) any {
		data, err := EncodeCompact(c)
		if err != nil {
			b.Fatal(err)
		}
		return f.Apply(data)
	}
	apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	spec := tasks.JobSpec{Name: "churn", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: total,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := apply(&SubmitJobCommand{ID: "churn", Spec: spec, Now: 1}); resp != "churn" {
		b.Fatal(resp)
	}
	ids := make([]string, workers)
	held := make([][]Grant, workers)
	now := int64(2)
	lease := func(w int) {
		now++
		held[w], _ = apply(&LeaseTasksCommand{Worker: ids[w], Max: perWorker, Now: now, Slack: int64(time.Hour)}).([]Grant)
		if len(held[w]) != perWorker {
			b.Fatalf("%s leased %d", ids[w], len(held[w]))
		}
	}
	for w := range ids {
		ids[w] = fmt.Sprintf("worker-%05d-5f1c9a7e", w)
		apply(&UpsertPeerCommand{ID: ids[w], Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: 1})
		lease(w)
	}
	reports := make([]api.Report, perWorker)
	if rounds := (total - workers*perWorker) / perWorker; b.N > rounds {
		b.Fatalf("at most %d rounds: the job has %d tasks", rounds, total)
	}
	b.ResetTimer()
	for i := range b.N {
		w := i % workers
		for k, g := range held[w] {
			reports[k] = api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte("1\n"), Duration: time.Millisecond, Engine: "wazero"}}
		}
		if ok, _ := apply(&CompleteTasksCommand{Worker: ids[w], Now: now, Reports: reports}).([]bool); len(ok) != perWorker || slices.Contains(ok, false) {
			b.Fatalf("round %d: %s's reports: %v", i, ids[w], ok)
		}
		lease(w)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*perWorker), "us/task")
}
