package ledger

import (
	"testing"
	"time"

	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkCacheResubmit is what the result cache costs Apply: a job of
// benchTasks tasks run through leases and reports (each done task indexed),
// then the same job submitted again, every task a hit (resubmit-us/task:
// one lookup, its verification and the copy of the result).
//
//	go test -run '^$' -bench CacheResubmit ./scheduler/ledger/
func BenchmarkCacheResubmit(b *testing.B) {
	spec := tasks.JobSpec{Name: "bench", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: benchTasks,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
	var resubmit time.Duration
	for i := range b.N {
		f := runLeaseComplete(b, spec, []string{"w1", "w2"})
		data, err := Encode(&SubmitJobCommand{ID: "again", Spec: spec, Now: int64(i)})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if resp := f.Apply(data); resp != "again" {
			b.Fatal(resp)
		}
		resubmit += time.Since(start)
		var done int
		f.View(func(l *Ledger) { done = l.jobs["again"].nDone })
		if done != benchTasks {
			b.Fatalf("the resubmit has %d of %d tasks done, want all from the cache", done, benchTasks)
		}
	}
	b.ReportMetric(float64(resubmit.Microseconds())/float64(benchTasks*b.N), "resubmit-us/task")
}
