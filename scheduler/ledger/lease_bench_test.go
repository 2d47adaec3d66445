package ledger

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// benchTasks is the size of the job each iteration of the lease and
// complete benchmarks runs through the FSM.
const benchTasks = 20000

// runLeaseComplete submits spec and has workers lease and report every
// replica of every task through encoded commands, as Raft would hand them
// to Apply, 256 per command; it returns the FSM.
func runLeaseComplete(b *testing.B, spec tasks.JobSpec, workers []string) *FSM {
	f := NewFSM()
	apply := func(c Command) any { return applyOne(b, f, c) }
	apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	for _, w := range workers {
		apply(&UpsertPeerCommand{ID: w, Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: 1})
	}
	if resp := apply(&SubmitJobCommand{ID: "bench", Spec: spec, Now: 1}); resp != "bench" {
		b.Fatal(resp)
	}
	now := int64(2)
	for done := false; !done; {
		done = true
		for _, w := range workers {
			now++
			grants, _ := apply(&LeaseTasksCommand{Worker: w, Max: 256, Now: now, Slack: int64(time.Hour)}).([]Grant)
			if len(grants) == 0 {
				continue
			}
			done = false
			reports := make([]api.Report, len(grants))
			for i, g := range grants {
				reports[i] = api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(fmt.Sprint(g.Index)), Duration: time.Millisecond}}
			}
			apply(&CompleteTasksCommand{Worker: w, Now: now, Reports: reports})
		}
	}
	return f
}

// BenchmarkLeaseComplete is the ledger's cost of a task without replicas:
// its lease and its report through Apply (tasks/s), and its bytes in a
// snapshot once done.
func BenchmarkLeaseComplete(b *testing.B) {
	spec := tasks.JobSpec{Name: "bench", ModuleHash: storage.Hash(testModule), Tasks: benchTasks, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: 1 << 10, NoCache: true}
	benchLeaseComplete(b, spec, []string{"w1", "w2"})
}

func benchLeaseComplete(b *testing.B, spec tasks.JobSpec, workers []string) {
	var f *FSM
	start := time.Now()
	for range b.N {
		f = runLeaseComplete(b, spec, workers)
	}
	b.ReportMetric(float64(benchTasks*b.N)/time.Since(start).Seconds(), "tasks/s")
	var n countingWriter
	if err := f.Snapshot().Write(&n); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/benchTasks, "snapshot-B/task")
	var s api.JobSummary
	f.View(func(l *Ledger) { s, _ = l.JobSummary("bench") })
	if s.Done != benchTasks {
		b.Fatalf("%d of %d tasks done", s.Done, benchTasks)
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
