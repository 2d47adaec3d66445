package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/liar"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// TestDashboard_ShowsReplicasAndTheWorkersRecord: with three honest workers
// and a liar on an R=3, Q=2 job, the overview's peers table shows each
// worker's agreed and outvoted counts and the liar distrusted, and the job
// page's Replicas column shows each replica's worker, short hash and
// verdict, the liar's outvoted. A job without replicas has no such column.
func TestDashboard_ShowsReplicasAndTheWorkersRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	honest := func(a *api.Assignment) []byte { return fmt.Appendf(nil, "%d\n", a.Index) }
	for _, id := range []string{"honest-1", "honest-2", "honest-3"} {
		liar.Start(t, g, "", id, honest)
	}
	liar.Start(t, g, "", "liar", liar.Constant([]byte("wrong\n")))
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	// 24 tasks, 72 replicas: the liar, one worker of four, must be leased at
	// least 3 to be distrusted; with 8 tasks it was once leased only 2.
	spec := tasks.JobSpec{Name: "voted", ModuleHash: storage.Hash(mod), Args: []string{"{index}"}, Tasks: 24,
		Timeout: 2 * time.Second, Memory: 1 << 20, MaxOutput: 1024, Replicas: 3, Quorum: 2}
	id, err := c.Submit(ctx, &spec)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.WaitJob(ctx, id, 10*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job %s: %+v %v", id, sum, err)
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cookie := uiLogin(t, noRedirects, g.Addr, g.Token, true)

	home := uiGet(t, g.Addr, "/ui/", cookie)
	for _, p := range peers {
		if p.ID != "liar" && !strings.HasPrefix(p.ID, "honest-") {
			continue
		}
		row := tableRow(t, home.body, `<tr id="peer-`+p.ID+`">`)
		trust := `<span class="ok">ok</span>`
		if p.Distrusted {
			trust = `<span class="bad">distrusted</span>`
		}
		want := fmt.Sprintf(`<td class="num">%d</td><td class="num">%d</td><td class="trust">%s</td>`, p.Agreed, p.Outvoted, trust)
		if !strings.Contains(row, want) {
			t.Errorf("peer %s (%+v): row lacks %q:\n%s", p.ID, p, want, row)
		}
		if p.ID == "liar" && (!p.Distrusted || p.Outvoted < 3) {
			t.Errorf("the liar's record %+v: want distrusted after 3 or more outvoted", p)
		}
	}

	page := uiGet(t, g.Addr, "/ui/jobs/"+id, cookie)
	wantPage(t, "replicated job page", page, http.StatusOK, "<th title=\"each replica's worker, result hash and verdict\">Replicas</th>")
	outvoted := 0
	for _, ts := range st.TaskStats {
		row := tableRow(t, page.body, fmt.Sprintf(`id="task-%d"`, ts.Index))
		for _, r := range ts.Replicas {
			if !strings.Contains(row, `<span class="mono">`+r.Worker+`</span> <span class="mono">`+r.Hash[:16]+`…</span>`) {
				t.Errorf("task %d: replica %+v not shown:\n%s", ts.Index, r, row)
			}
			if r.Verdict == api.VerdictOutvoted {
				outvoted++
				if !strings.Contains(row, `<span class="bad">outvoted</span>`) {
					t.Errorf("task %d: outvoted replica of %s not marked:\n%s", ts.Index, r.Worker, row)
				}
			}
		}
	}
	if outvoted == 0 {
		t.Error("no outvoted replica in the job: the liar ran none")
	}

	spec.Replicas, spec.Quorum, spec.Name = 0, 0, "single"
	single, err := c.Submit(ctx, &spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitJob(ctx, single, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if p := uiGet(t, g.Addr, "/ui/jobs/"+single, cookie); strings.Contains(p.body, ">Replicas</th>") {
		t.Error("a job without replicas has a Replicas column")
	}
}
