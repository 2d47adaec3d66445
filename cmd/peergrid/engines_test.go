package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/tasks"
)

// TestCLI_JobStatusShowsTheGridsEngineChoice: once two workers' reports
// settle a module's engine, `job status` of an auto job says which.
func TestCLI_JobStatusShowsTheGridsEngineChoice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := &cli{t: t, grid: g}
	job := writeJob(t, examples.Tiny(), "name = \"echo\"\nmodule = \"m.wasm\"\nargs = [\"{index}\"]\ntasks = 4\n")
	code, out, errOut := c.run("job", "submit", job, "--json")
	var submitted struct{ ID string }
	if err := json.Unmarshal([]byte(out), &submitted); code != 0 || err != nil {
		t.Fatalf("submit exit %d: %s %s (%v)", code, out, errOut, err)
	}
	if _, out, _ := c.run("job", "status", submitted.ID); strings.Contains(out, "grid choice") {
		t.Fatalf("status names a grid choice before any run:\n%s", out)
	}
	gc := g.Client()
	for _, w := range []string{"w1", "w2"} {
		grants, err := gc.Lease(ctx, &api.LeaseRequest{Worker: w, Cores: 1, Max: 2, Engines: []string{"wazero", "wasmtime"}})
		if err != nil || len(grants) != 2 {
			t.Fatalf("%s: lease %d, %v", w, len(grants), err)
		}
		var reps []api.Report
		for _, a := range grants {
			reps = append(reps, api.Report{TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}, Result: tasks.Result{Engine: "wasmtime", Duration: 50 * time.Millisecond}})
		}
		if _, err := gc.Report(ctx, &api.ReportRequest{Worker: w, Reports: reps}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = c.run("job", "status", submitted.ID)
	if code != 0 || !strings.Contains(out, "engine: wasmtime (grid choice)") {
		t.Fatalf("status (exit %d) does not show the grid's choice:\n%s%s", code, out, errOut)
	}
}
