package ledger

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
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

// BenchmarkCacheLargeJob is a 1,000,000-task job (PEERGRID_MEMORY_TASKS
// changes it) run through Apply, resubmitted (every task a hit) and both
// jobs purged: resubmit-s and purge-ms, what a user's submit or purge of
// a large job holds Apply for.
//
//	go test -run '^$' -bench CacheLargeJob -benchtime 1x ./scheduler/ledger/
func BenchmarkCacheLargeJob(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("PEERGRID_MEMORY_TASKS")); err == nil && v > 0 {
		n = v
	}
	var resubmit, purge time.Duration
	for range b.N {
		f := runTinyJob(b, n)
		spec := tinySpec(n)
		resubmit += timeApply(b, f, &SubmitJobCommand{ID: "again", Spec: spec, Now: 1}, "again")
		purge += timeApply(b, f, &PurgeJobCommand{ID: "tiny"}, nil)
		purge += timeApply(b, f, &PurgeJobCommand{ID: "again"}, nil)
	}
	b.ReportMetric(resubmit.Seconds()/float64(b.N), "resubmit-s")
	b.ReportMetric(float64(purge.Milliseconds())/float64(2*b.N), "purge-ms")
}

func tinySpec(n int) tasks.JobSpec {
	return tasks.JobSpec{Name: "tiny", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
}

// runTinyJob runs an n-task job "tiny" to its end through Apply.
func runTinyJob(b *testing.B, n int) *FSM {
	f := NewFSM()
	timeApply(b, f, &PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule}, nil)
	timeApply(b, f, &UpsertPeerCommand{ID: "w", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: 1}, nil)
	timeApply(b, f, &SubmitJobCommand{ID: "tiny", Spec: tinySpec(n), Now: 1}, "tiny")
	for done := 0; done < n; {
		grants, _ := applyOne(b, f, &LeaseTasksCommand{Worker: "w", Max: 256, Now: 2, Slack: int64(time.Hour)}).([]Grant)
		if len(grants) == 0 {
			b.Fatalf("nothing leased after %d done", done)
		}
		reports := make([]api.Report, len(grants))
		for i, g := range grants {
			reports[i] = api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(strconv.Itoa(g.Index))}}
		}
		applyOne(b, f, &CompleteTasksCommand{Worker: "w", Now: 2, Reports: reports})
		done += len(grants)
	}
	return f
}

// timeApply applies c, wants the answer want, and says how long Apply took.
func timeApply(b *testing.B, f *FSM, c Command, want any) time.Duration {
	start := time.Now()
	if got := applyOne(b, f, c); got != want {
		b.Fatalf("%T: %v, want %v", c, got, want)
	}
	return time.Since(start)
}

// applyOne applies c to f encoded, as Raft hands a command to Apply.
func applyOne(tb testing.TB, f *FSM, c Command) any {
	tb.Helper()
	data, err := Encode(c)
	if err != nil {
		tb.Fatal(err)
	}
	return f.Apply(data)
}
