package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// reportRuns leases n tasks as worker (offering engines) and reports each
// as run on the engine of runs[i] in its duration.
func reportRuns(t *testing.T, c *client.Client, worker string, engines []string, runs []api.Report) []api.Assignment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grants, err := c.Lease(ctx, &api.LeaseRequest{Worker: worker, Cores: 4, Max: len(runs), Engines: engines})
	if err != nil || len(grants) != len(runs) {
		t.Fatalf("%s: lease: %d grants, %v", worker, len(grants), err)
	}
	for i, a := range grants {
		runs[i].TaskRef = api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
	}
	acc, err := c.Report(ctx, &api.ReportRequest{Worker: worker, Reports: runs})
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range acc {
		if !ok {
			t.Fatalf("%s: report %d refused", worker, i)
		}
	}
	return grants
}

func ran(engine string, d time.Duration) api.Report {
	return api.Report{Result: tasks.Result{Engine: engine, Duration: d}}
}

// TestGridEngine_DecidedFromTwoWorkersIgnoringLies: the leader learns a
// module's engine from the workers' reports. One worker's reports decide
// nothing; runs under a microsecond or past the task's timeout, and runs
// on an engine the worker does not offer, are ignored (each would have won
// the comparison); a second worker's runs decide, and from then on the
// job's assignments and its status name the grid's engine. A worker that
// offers one engine moves nothing.
func TestGridEngine_DecidedFromTwoWorkersIgnoringLies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startServerGrid(t)
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "learn", ModuleHash: storage.Hash(mod), Args: []string{"{index}"}, Tasks: 20,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	gridEngine := func() string {
		st, err := c.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.GridEngine
	}
	both := []string{"wazero", "wasmtime"}
	reportRuns(t, c, "w1", both, []api.Report{
		ran("wasmtime", 300*time.Millisecond), ran("wasmtime", 320*time.Millisecond), ran("wasmtime", 310*time.Millisecond),
		ran("wazero", 500*time.Nanosecond), // too short to be true
		ran("wazero", 2*time.Hour),         // past the timeout
		ran("wasmer", time.Millisecond),    // w1 does not offer it
	})
	if e := gridEngine(); e != "" {
		t.Fatalf("one worker's reports decided %q", e)
	}
	reportRuns(t, c, "w2", both, []api.Report{ran("wasmtime", 305*time.Millisecond)})
	// The decision is committed before the report is answered.
	if e := gridEngine(); e != "wasmtime" {
		t.Fatalf("after two workers' runs: grid engine %q, want wasmtime", e)
	}
	// A worker with one engine had no choice to teach: its (faster) runs
	// on wazero move nothing.
	grants := reportRuns(t, c, "w3", []string{"wazero"}, []api.Report{ran("wazero", time.Millisecond), ran("wazero", time.Millisecond)})
	if grants[0].GridEngine != "wasmtime" {
		t.Fatalf("assignment after the decision names %q, want wasmtime", grants[0].GridEngine)
	}
	if e := gridEngine(); e != "wasmtime" {
		t.Fatalf("a one-engine worker's runs moved the grid to %q", e)
	}
}
