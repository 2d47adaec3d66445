package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/tasks"
)

// TestMultiProcess_ErasureCodedJobSurvivesKill9 is the storage issue's
// acceptance 6 with real processes: three servers, seven worker processes
// that are storage peers and two compute-only workers (--storage=false) run a
// job of 12 tasks with 1 MiB inputs and 1 MiB results, erasure-coded 3+2.
// Mid-job, m=2 storage peers and one compute worker are killed with SIGKILL.
// The job completes and every result is byte-identical to its input (the
// module is cat), read back from the surviving storage peers.
func TestMultiProcess_ErasureCodedJobSurvivesKill9(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL and SIGSTOP")
	}
	const n, storagePeers = 12, 7
	c := proctest.StartServers(t, 3, proctest.Options{WorkerTTL: time.Second})
	var workers []*proctest.Proc
	for i := range storagePeers {
		workers = append(workers, c.AddWorker(fmt.Sprintf("st%d", i+1), 1))
	}
	for i := range 2 {
		workers = append(workers, c.AddWorker(fmt.Sprintf("cpu%d", i+1), 1, "--storage=false"))
	}
	client := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proctest.Eventually(t, 60*time.Second, "every storage peer registered", func() bool {
		peers, err := client.StoragePeers(ctx, false)
		return err == nil && len(peers) == storagePeers
	})

	inputs, jf := writeCatJob(t, n)
	id, err := client.SubmitJobFile(ctx, jf)
	if err != nil {
		t.Fatal(err)
	}
	jobcheck.WaitJob(t, client, id, 90*time.Second, func(s *api.JobSummary) bool { return s.Done >= 2 })
	for _, w := range workers {
		if err := w.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	before := jobcheck.WaitJob(t, client, id, 10*time.Second, func(*api.JobSummary) bool { return true })
	if before.State.Finished() {
		t.Fatalf("the job finished before the kills: the test proves nothing (%+v)", before)
	}
	killed := map[int]bool{1: true, 4: true, storagePeers: true} // st2, st5, cpu1
	for i, w := range workers {
		if killed[i] {
			w.Kill9()
		} else if err := w.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("killed st2, st5 (storage peers) and cpu1 with %d of %d tasks done, %d leased", before.Done, n, before.Leased)

	sum := jobcheck.WaitJob(t, client, id, 2*time.Minute, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete || sum.Done != n {
		t.Fatalf("job ended %s: %+v", sum.State, sum)
	}
	checkCatResults(ctx, t, client, id, inputs)
}

// writeCatJob writes n random 1 MiB inputs, the cat module and a job file
// that codes them 3+2, and parses the job file.
func writeCatJob(t *testing.T, n int) ([][]byte, *tasks.JobFile) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = make([]byte, 1<<20)
		for j := range inputs[i] {
			inputs[i][j] = byte(rng.Uint32())
		}
		mustWrite(t, filepath.Join(dir, "in", fmt.Sprintf("%02d.bin", i)), inputs[i])
	}
	mustWrite(t, filepath.Join(dir, "cat.wasm"), wasmtest.Cat())
	mustWrite(t, filepath.Join(dir, "job.toml"), []byte(`name = "cat"
module = "cat.wasm"
inputs = "in/*.bin"
max_output = "2MiB"
memory = "16MiB"
timeout = "20s"
retries = 5
erasure = { k = 3, m = 2 }
`))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return inputs, jf
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkCatResults wants every task's stdout equal to its input, at least one
// result stored erasure-coded 3+2 (so the test covers coded results), and
// every input coded 3+2 as the job file says.
func checkCatResults(ctx context.Context, t *testing.T, client *client.Client, id string, inputs [][]byte) {
	t.Helper()
	results, err := client.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(inputs) {
		t.Fatalf("%d results, want %d", len(results), len(inputs))
	}
	coded := 0
	for i, r := range results {
		if r.State != tasks.TaskDone || !bytes.Equal(r.Stdout, inputs[i]) {
			t.Fatalf("task %d: state %s, %d bytes of stdout that differ from its input", i, r.State, len(r.Stdout))
		}
		if r.StdoutBlob == "" {
			continue
		}
		coded++
		if m, err := client.Manifest(ctx, r.StdoutBlob); err != nil || m.K != 3 || m.M != 2 {
			t.Fatalf("task %d result: want it coded 3+2: %+v %v", i, m, err)
		}
	}
	if coded == 0 {
		t.Fatal("no result went to the storage peers: the test is not testing erasure-coded results")
	}
	st, err := client.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Spec.Inputs {
		if m, err := client.Manifest(ctx, in.Hash); err != nil || m.K != 3 || m.M != 2 {
			t.Fatalf("input %s: want it coded 3+2: %+v %v", in.Name, m, err)
		}
	}
}
