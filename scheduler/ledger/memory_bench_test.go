package ledger

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkLedger_HeapPerFinishedTask measures what a finished task costs
// the ledger's live heap (issue 15: at most 250 bytes): a job of 1,000,000
// tiny tasks (PEERGRID_MEMORY_TASKS changes it) leased in batches of 256 by
// 8 workers and completed with a short stdout, as the tiny example's, all
// through FSM.Apply; the live heap after a collection, before the submit
// and after the last completion, over the tasks.
//
//	go test -run '^$' -bench HeapPerFinishedTask -benchtime 1x ./scheduler/ledger/
//
// PEERGRID_MEMORY_PROFILE=FILE writes a heap profile of the finished job.
func BenchmarkLedger_HeapPerFinishedTask(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("PEERGRID_MEMORY_TASKS")); err == nil && v > 0 {
		n = v
	}
	var perTask float64
	for range b.N {
		perTask = heapPerFinishedTask(b, n)
	}
	b.ReportMetric(perTask, "heap-B/task")
	b.ReportMetric(0, "ns/op")
}

func heapPerFinishedTask(b *testing.B, n int) float64 {
	b.StopTimer()
	fsm := NewFSM()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	apply := func(c Command) any {
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		return fsm.Apply(data)
	}
	apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	workers := make([]string, 8)
	for i := range workers {
		workers[i] = fmt.Sprintf("worker-%02d-5f1c9a7e", i)
		apply(&UpsertPeerCommand{ID: workers[i], Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: now})
	}
	before := heapInUse()
	b.StartTimer()
	spec := tasks.JobSpec{Name: "tiny", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := apply(&SubmitJobCommand{ID: "tiny", Spec: spec, Now: now, RequestID: "r-tiny"}); resp != "tiny" {
		b.Fatalf("submit: %v", resp)
	}
	for done := 0; done < n; {
		w := workers[done/256%len(workers)]
		grants, _ := apply(&LeaseTasksCommand{Worker: w, Max: 256, Now: now, Engines: []string{"wasmtime"}}).([]Grant)
		if len(grants) == 0 {
			b.Fatalf("nothing leased after %d done", done)
		}
		reports := make([]api.Report, len(grants))
		for i, g := range grants {
			reports[i] = api.Report{TaskRef: g.Ref(), Result: tasks.Result{Stdout: []byte(strconv.Itoa(g.Index) + "\n"),
				Duration: 3 * time.Millisecond, Engine: "wasmtime"}}
		}
		apply(&CompleteTasksCommand{Worker: w, Now: now, Reports: reports})
		done += len(grants)
	}
	b.StopTimer()
	after := heapInUse()
	if path := os.Getenv("PEERGRID_MEMORY_PROFILE"); path != "" {
		writeHeapProfile(b, path) // what holds the heap, by allocation site
	}
	runtime.KeepAlive(fsm)
	return float64(after-before) / float64(n)
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
