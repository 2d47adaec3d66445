package devgrid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// padModule appends a custom section of n random bytes to a module: still
// the same program, as large as a test needs.
func padModule(mod []byte, n int, seed uint64) []byte {
	name := []byte("pad")
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(name)))
	body = append(body, name...)
	body = append(body, randomBytes(n, seed)...)
	out := append([]byte{}, mod...)
	out = append(out, 0) // custom section
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// moduleHolders lists the peers whose module cache holds the module.
func moduleHolders(dirs []string, hash string) map[int]bool {
	out := map[int]bool{}
	for i, d := range dirs {
		if _, err := os.Stat(wasm.ModuleDir(filepath.Join(d, "modules")).Path(hash)); err == nil {
			out[i] = true
		}
	}
	return out
}

// catJob writes a job directory: module m.wasm, one input per entry of
// inputs (in/NN.bin), and job.toml running the module on each input.
func catJob(t *testing.T, module []byte, inputs [][]byte) *tasks.JobFile {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "m.wasm"), module)
	for i, in := range inputs {
		writeFile(t, filepath.Join(dir, "in", fmt.Sprintf("%02d.bin", i)), in)
	}
	writeFile(t, filepath.Join(dir, "job.toml"), []byte("name = \"cat\"\nmodule = \"m.wasm\"\ninputs = \"in/*.bin\"\nmemory = \"16MiB\"\nretries = 3\n"))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return jf
}

// runCatJob submits a cat job, waits for it and checks every result is its input.
func runCatJob(ctx context.Context, t *testing.T, c *client.Client, jf *tasks.JobFile, inputs [][]byte) string {
	t.Helper()
	id, err := c.SubmitJobFile(ctx, jf)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		st, _ := c.Job(ctx, id)
		t.Fatalf("job %s: %+v %v (tasks %+v)", id, sum, err, st)
	}
	results, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if !bytes.Equal(r.Stdout, inputs[i]) {
			t.Fatalf("job %s task %d: stdout %q, want %q", id, i, r.Stdout, inputs[i])
		}
	}
	return id
}

// TestGrid_LargeModuleIsErasureCodedAndRunsAfterLosingMPeers: a job's
// module over the inline threshold is stored erasure-coded (a manifest, no
// inline bytes), workers fetch it from the storage peers and run it, and
// workers that never had it still fetch and run it after m storage peers
// (including every one that had it cached) are stopped.
func TestGrid_LargeModuleIsErasureCodedAndRunsAfterLosingMPeers(t *testing.T) {
	g, stops, dirs := storageGridWith(t, 6, nil)
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	module := padModule(wasmtest.Cat(), 5<<20, 11) // two 4 MiB segments
	hash := storage.Hash(module)

	first := [][]byte{[]byte("first job\n")}
	runCatJob(ctx, t, c, catJob(t, module, first), first)
	m, err := c.Manifest(ctx, hash)
	if err != nil || m.K != storage.DefaultK || m.M != storage.DefaultM || m.Size != int64(len(module)) || len(m.Segments) != 2 {
		t.Fatalf("module manifest: %+v %v", m, err)
	}
	var se *client.StatusError
	if _, err := c.GetBlob(ctx, hash); !errors.As(err, &se) || se.Code != 409 {
		t.Fatalf("inline bytes of the module: want 409 (erasure-coded only), got %v", err)
	}

	// Stop m=2 peers: every one that has the module cached, then others.
	holders := moduleHolders(dirs, hash)
	if len(holders) == 0 || len(holders) > 2 {
		t.Fatalf("peers with the module cached after a one-task job: %v", holders)
	}
	for i := 0; len(holders) < 2; i++ {
		holders[i] = true
	}
	for i := range holders {
		stops[i]()
	}

	second := make([][]byte, 8)
	for i := range second {
		second[i] = []byte(fmt.Sprintf("second job, task %d\n", i))
	}
	runCatJob(ctx, t, c, catJob(t, module, second), second)
	fetched := 0
	for i := range moduleHolders(dirs, hash) {
		if !holders[i] {
			fetched++
		}
	}
	if fetched == 0 {
		t.Fatal("no live worker fetched the module after the peers stopped: the test tested nothing")
	}
}

// TestGrid_NonWasmModuleIsRefusedAtSubmit: a module file that is not
// WebAssembly (changed after the job file was parsed) is refused by the
// client before anything is uploaded, with an error naming the file.
func TestGrid_NonWasmModuleIsRefusedAtSubmit(t *testing.T) {
	g := startGrid(t, t.TempDir(), true)
	c := g.Client()
	ctx := context.Background()
	jf := catJob(t, wasmtest.Cat(), [][]byte{[]byte("in")})
	bad := append([]byte("#!/bin/sh\n"), randomBytes(100<<10, 5)...) // over the inline threshold
	if err := os.WriteFile(jf.ModulePath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Server.Store().Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	before := g.Server.Store().FSM().StateHash()
	_, err := c.SubmitJobFile(ctx, jf)
	want := "module " + jf.ModulePath + " is not WebAssembly: it starts with"
	if !errors.Is(err, client.ErrNotWasm) || !strings.Contains(err.Error(), want) {
		t.Fatalf("submit with a non-wasm module: %v, want an error containing %q", err, want)
	}
	if got := g.Server.Store().FSM().StateHash(); got != before {
		t.Fatal("a refused submit changed the ledger")
	}
	for _, h := range []string{storage.Hash(bad), storage.Hash([]byte("in"))} {
		if ok, err := c.HasBlob(ctx, h); err != nil || ok {
			t.Fatalf("blob %s after a refused submit: has=%v %v", h, ok, err)
		}
	}
	if jobs, err := c.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after a refused submit: %v %v", jobs, err)
	}
}

// TestGrid_ErasureCodedNonWasmModuleFailsAsInvalidModule: the server cannot
// check the bytes of an erasure-coded module, so it takes the job; the
// workers fetch it and fail its tasks with invalid_module.
func TestGrid_ErasureCodedNonWasmModuleFailsAsInvalidModule(t *testing.T) {
	g, _ := storageGrid(t, 6)
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bad := append([]byte("#!/bin/sh\n"), randomBytes(100<<10, 6)...)
	hash, m, err := c.PutBlobFrom(ctx, bytes.NewReader(bad), int64(len(bad)), client.BlobOptions{})
	if err != nil || m == nil {
		t.Fatalf("put: %v (manifest %v)", err, m)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "bad", ModuleHash: hash, Tasks: 1, Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10})
	if err != nil {
		t.Fatalf("submit with an erasure-coded module: %v", err)
	}
	if sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobFailed {
		t.Fatalf("job: %+v %v", sum, err)
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if k := st.TaskStats[0].ErrorKind; k != string(wasm.KindInvalidModule) {
		t.Fatalf("task failed with %q (%s), want invalid_module", k, st.TaskStats[0].Error)
	}
}

// sizedRunner writes base+i bytes of stdout, i being the task's first argument.
type sizedRunner struct{ base int }

func (r sizedRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	i, err := strconv.Atoi(req.Args[0])
	if err != nil {
		return nil, err
	}
	return &wasm.Result{Stdout: bytes.Repeat([]byte{'x'}, r.base+i)}, nil
}

// TestGrid_CustomInlineThresholdIsHonoured: a server's inline threshold is
// what clients and workers use: a blob (or a result) at it stays inline, one
// byte more is erasure-coded.
func TestGrid_CustomInlineThresholdIsHonoured(t *testing.T) {
	const threshold = 1000
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: time.Second, Logger: quiet, InlineThreshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	for i := 0; i < 6; i++ {
		w, err := worker.New(context.Background(), worker.Config{ID: fmt.Sprintf("p%d", i), Client: g.Client(), DataDir: t.TempDir(),
			Cores: 1, Pool: sizedRunner{base: threshold}, StorageBind: "127.0.0.1:0", Heartbeat: 200 * time.Millisecond, DrainGrace: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		t.Cleanup(func() { cancel(); <-done; w.Close() })
	}
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testcluster.Eventually(t, 10*time.Second, "every storage peer registered", func() bool {
		peers, err := c.StoragePeers(ctx, false)
		return err == nil && len(peers) == 6
	})
	if cfg, err := c.StorageConfig(ctx); err != nil || cfg.InlineThreshold != threshold {
		t.Fatalf("storage config: %+v %v", cfg, err)
	}

	at, over := randomBytes(threshold, 1), randomBytes(threshold+1, 2)
	h, m, err := c.PutBlobFrom(ctx, bytes.NewReader(at), threshold, client.BlobOptions{Pin: true})
	if err != nil || m != nil {
		t.Fatalf("put %d bytes: manifest %v, %v: want it inline", threshold, m, err)
	}
	if got, err := c.GetBlob(ctx, h); err != nil || !bytes.Equal(got, at) {
		t.Fatalf("inline blob: %v", err)
	}
	h, m, err = c.PutBlobFrom(ctx, bytes.NewReader(over), threshold+1, client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		t.Fatalf("put %d bytes: manifest %v, %v: want it erasure-coded", threshold+1, m, err)
	}
	if got, err := c.Manifest(ctx, h); err != nil || got.Size != threshold+1 {
		t.Fatalf("manifest of the coded blob: %+v %v", got, err)
	}
	// The per-call override still wins.
	if _, m, err := c.PutBlobFrom(ctx, bytes.NewReader(over), threshold+1, client.BlobOptions{InlineThreshold: 2 * threshold}); err != nil || m != nil {
		t.Fatalf("put with an override: manifest %v, %v: want it inline", m, err)
	}

	// Workers: a result at the threshold is reported inline, one over it coded.
	mod := wasmtest.Cat()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "sized", ModuleHash: storage.Hash(mod), Args: []string{"{index}"}, Tasks: 2,
		Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job: %+v %v", sum, err)
	}
	results, err := c.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if len(r.Stdout) != threshold+i || (r.StdoutBlob != "") != (i == 1) {
			t.Fatalf("task %d: %d bytes of stdout, blob %q: want %d bytes, erasure-coded only over %d", i, len(r.Stdout), r.StdoutBlob, threshold+i, threshold)
		}
	}
}
