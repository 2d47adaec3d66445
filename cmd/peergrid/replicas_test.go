package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/liar"
)

// TestCLI_ReplicasAreShownTerminalSafe: `job status` lists every replica of
// a replicated task (worker, attempt, short hash, exit, verdict), escapes a
// worker id a stranger chose, and prints nothing of the kind for an R=1 job.
func TestCLI_ReplicasAreShownTerminalSafe(t *testing.T) {
	zero := 0
	var out bytes.Buffer
	m := &Main{Stdout: &out}
	ts := []api.TaskStatus{{Index: 4, Replicas: []api.ReplicaOutcome{
		{Worker: "honest", Attempt: 1, Hash: strings.Repeat("ab", 32), ExitCode: &zero, Verdict: "agreed"},
		{Worker: "evil\x1b[2J", Attempt: 2, Hash: strings.Repeat("cd", 32), ExitCode: &zero, Verdict: "outvoted"},
		{Worker: "slow", Attempt: 3, Verdict: "running"},
	}}}
	if err := m.printReplicas(ts); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	wantNoControls(t, "job status replicas", got)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  4 +1 +honest +abababababab +0 +agreed$`),
		regexp.MustCompile(`(?m)^  4 +2 +"evil\\x1b\[2J" +cdcdcdcdcdcd +0 +outvoted$`),
		regexp.MustCompile(`(?m)^  4 +3 +slow +- +- +running$`),
	} {
		if !want.MatchString(got) {
			t.Fatalf("replicas table does not match %s:\n%s", want, got)
		}
	}
	out.Reset()
	if err := m.printReplicas([]api.TaskStatus{{Index: 0}}); err != nil || out.Len() != 0 {
		t.Fatalf("an R=1 job printed replicas %q (%v)", out.String(), err)
	}
}

// replicaGrid is a dev grid without a real worker, three honest workers
// (liars that tell the truth about the tiny module: task i prints "i\n")
// and one liar that always says "wrong", each joined with its own token.
func replicaGrid(t *testing.T) *cli {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	for _, name := range []string{"honest-1", "honest-2", "honest-3"} {
		liar.Start(t, g, "", name, tinyTruth)
	}
	liar.Start(t, g, "", "liar", liar.Constant([]byte("wrong\n")))
	return &cli{t: t, grid: g}
}

// tinyTruth is what the tiny module prints with args ["{index}"].
func tinyTruth(a *api.Assignment) []byte { return fmt.Appendf(nil, "%d\n", a.Index) }

// TestCLI_PeersShowTheRecordAndTrustClearsIt: a liar among three honest
// workers on an R=3, Q=2 job: `job status` shows its outvoted replicas and
// every task's agreed result is right; `peers` shows its OUTVOTED count
// and, once it lost enough votes, TRUST distrusted; `peers trust` (operator)
// makes it ok again, and --json carries the api fields.
func TestCLI_PeersShowTheRecordAndTrustClearsIt(t *testing.T) {
	c := replicaGrid(t)
	job := writeJob(t, examples.Tiny(), "name = \"voted\"\nmodule = \"m.wasm\"\nargs = [\"{index}\"]\ntasks = 12\nreplicas = 3\nquorum = 2\n")
	code, out, errOut := c.run("job", "submit", job, "--wait", "--json")
	if code != exitOK {
		t.Fatalf("submit --wait exit %d: %s %s", code, out, errOut)
	}
	var sub struct{ ID string }
	if err := json.Unmarshal([]byte(out), &sub); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = c.run("job", "status", sub.ID)
	if code != exitOK || !regexp.MustCompile(`(?m)^  \d+ +\d+ +liar +[0-9a-f]{12} +0 +outvoted$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  \d+ +\d+ +honest-\d +[0-9a-f]{12} +0 +agreed$`).MatchString(out) {
		t.Fatalf("job status (exit %d) shows no outvoted liar beside agreed honest replicas:\n%s%s", code, out, errOut)
	}
	rs, err := c.grid.Client().Results(context.Background(), sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if string(r.Stdout) != fmt.Sprintf("%d\n", r.Index) {
			t.Fatalf("task %d: agreed stdout %q", r.Index, r.Stdout)
		}
	}

	liarRow := func() []string {
		code, out, errOut := c.run("peers")
		if code != exitOK {
			t.Fatalf("peers exit %d: %s", code, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "liar" {
				return f
			}
		}
		t.Fatalf("no liar row in peers:\n%s", out)
		return nil
	}
	// The liar is distrusted once it has lost minStrikes votes; the honest
	// workers may take all but two of a job's replicas (one CI run), so
	// jobs follow until it is, for up to a minute: a liar never distrusted
	// would still be "ok" however many votes it lost.
	row := liarRow()
	deadline := time.Now().Add(time.Minute)
	for k := 0; row[len(row)-4] != "distrusted" && time.Now().Before(deadline); k++ {
		more := writeJob(t, examples.Tiny(), fmt.Sprintf("name = \"voted\"\nmodule = \"m.wasm\"\nargs = [\"{index}\", \"%d\"]\n"+
			"tasks = 12\nreplicas = 3\nquorum = 2\n", k)) // other args: not the result cache's
		if code, out, errOut := c.run("job", "submit", more, "--wait"); code != exitOK {
			t.Fatalf("submit --wait exit %d: %s %s", code, out, errOut)
		}
		row = liarRow()
	}
	// ... DONE AGREED OUTVOTED TRUST CPU-GIVEN LAST SEEN ("1s ago": two fields)
	if agreed, outvoted, trust := row[len(row)-6], row[len(row)-5], row[len(row)-4]; agreed != "0" || outvoted == "0" || trust != "distrusted" {
		t.Fatalf("liar row %q: want AGREED 0, OUTVOTED > 0, TRUST distrusted", row)
	}
	if code, out, errOut := c.run("peers", "trust", "liar"); code != exitOK || !strings.Contains(out, "trusted worker liar") {
		t.Fatalf("peers trust: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = c.run("peers", "--json")
	var peers []api.Peer
	if err := json.Unmarshal([]byte(out), &peers); code != exitOK || err != nil {
		t.Fatalf("peers --json: exit %d %v", code, err)
	}
	for _, p := range peers {
		if p.ID == "liar" && (p.Distrusted || p.Outvoted == 0) {
			t.Fatalf("after peers trust the liar is %+v: want trusted, its outvoted count kept", p)
		}
	}
	if row := liarRow(); row[len(row)-4] != "ok" {
		t.Fatalf("after peers trust the liar row is %q", row)
	}
}

// TestCLI_NoQuorumIsPrintedWhole: three workers that each print their own
// name never agree; with R=2, Q=2, max_replicas=3 the task fails as
// no_quorum, and `job status` prints its error whole (every worker named,
// where other errors are cut to a line) beside the replica rows.
func TestCLI_NoQuorumIsPrintedWhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	workers := []string{"worker-with-a-long-name-alpha", "worker-with-a-long-name-bravo", "worker-with-a-long-name-charlie"}
	for _, id := range workers {
		liar.Start(t, g, "", id, func(*api.Assignment) []byte { return []byte(id + "\n") })
	}
	c := &cli{t: t, grid: g}
	job := writeJob(t, examples.Tiny(), "name = \"drift\"\nmodule = \"m.wasm\"\ntasks = 1\nreplicas = 2\nquorum = 2\nmax_replicas = 3\n")
	code, out, errOut := c.run("job", "submit", job, "--wait", "--json")
	if code != exitJobFailed {
		t.Fatalf("submit --wait exit %d, want %d: %s %s", code, exitJobFailed, out, errOut)
	}
	var sub struct{ ID string }
	if err := json.Unmarshal([]byte(out), &sub); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = c.run("job", "status", sub.ID)
	if code != exitOK {
		t.Fatalf("job status exit %d: %s", code, errOut)
	}
	line := ""
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, "task 0: no_quorum: ") {
			line = l
		}
	}
	for _, id := range workers {
		if !strings.Contains(line, id) {
			t.Fatalf("no_quorum line %q does not name %s; stderr:\n%s", line, id, errOut)
		}
		if !regexp.MustCompile(`(?m)^  0 +\d+ +` + id + ` +[0-9a-f]{12} +0 +\w+$`).MatchString(out) {
			t.Fatalf("no replica row of %s:\n%s", id, out)
		}
	}
}
