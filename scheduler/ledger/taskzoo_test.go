package ledger

import (
	"math"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// buildTaskZoo applies a log that leaves tasks in every shape the record
// has: done with small, large, negative and beyond-int32 exit codes, an
// engine no build knows, a stdout blob, stderr, failed and requeued with
// an error, leased, late reports, cached from another job, replicated,
// and cancelled. The same log built testdata/snapshot-v1-tasks.bin with
// the task record before it was made compact (see TestSnapshot_OldTaskRecordsRestore).
func buildTaskZoo(a *applier) {
	a.t.Helper()
	for _, w := range []string{"w1", "w2", "w3"} {
		a.apply(&UpsertPeerCommand{ID: w, Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	}
	blob := []byte("a result too large to keep inline, pretend")
	a.apply(&PutBlobCommand{Hash: storage.Hash(blob), Data: blob, Now: a.now})

	spec := tasks.JobSpec{Name: "zoo", ModuleHash: storage.Hash(testModule), Tasks: 8, Timeout: time.Second,
		Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1}
	zooSubmit(a, "plain", spec)
	g := a.lease("w1", 7)
	results := []tasks.Result{
		{ExitCode: 0, Stdout: []byte("ok\n"), Duration: 3 * time.Millisecond, Engine: tasks.EngineWasmtime},
		{ExitCode: 300, Stdout: []byte("big\n"), Duration: 1, Engine: tasks.EngineWazero},
		{ExitCode: -7, Stderr: []byte("negative\n"), Duration: 2, Engine: tasks.EngineWasmer},
		{ExitCode: math.MaxInt32 + 5, Duration: 4, Engine: "quickjs-9"},
		{ExitCode: math.MinInt32 - 5, StdoutBlob: storage.Hash(blob), Duration: 5, Engine: tasks.EngineWasmtime},
		{ErrorKind: "trap", Error: "unreachable executed", Stderr: []byte("panic\n"), Duration: 6},
	}
	reports := make([]api.Report, len(results))
	for i, r := range results {
		reports[i] = api.Report{TaskRef: g[i].Ref(), Result: r}
	}
	a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: reports})
	// a late report (w2 never held task 0's lease) and one from the past attempt
	a.apply(&CompleteTasksCommand{Worker: "w2", Now: a.now, Reports: reports[:1]})
	a.apply(&ExpireLeasesCommand{Tasks: []api.TaskRef{g[6].Ref()}, Reason: "worker gone", Now: a.now})
	a.lease("w2", 1) // task 5 or 6 again, leased; the other stays queued

	cached := spec
	zooSubmit(a, "again", cached) // tasks 0-4 done by cache hits

	rep := spec
	rep.Name, rep.Tasks, rep.Replicas, rep.Quorum = "rep", 2, 2, 2
	zooSubmit(a, "rep", rep)
	for _, w := range []string{"w1", "w2"} {
		for _, gr := range a.lease(w, 2) {
			a.apply(&CompleteTasksCommand{Worker: w, Now: a.now, Reports: []api.Report{{TaskRef: gr.Ref(),
				Result: tasks.Result{Stdout: []byte("same"), Duration: time.Millisecond, Engine: tasks.EngineWazero}}}})
		}
	}

	gone := spec
	gone.Name, gone.Tasks = "gone", 3
	zooSubmit(a, "gone", gone)
	a.lease("w3", 1)
	a.apply(&CancelJobCommand{ID: "gone", Now: a.now})
}

func zooSubmit(a *applier, id string, spec tasks.JobSpec) {
	a.t.Helper()
	if resp := a.apply(&SubmitJobCommand{ID: id, Spec: spec, Now: a.now}); resp != id {
		a.t.Fatalf("submit %s: %v", id, resp)
	}
}
