package devgrid

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// inputRecorder runs tasks on a real executor pool and records how each
// got its stdin, checking, while the task is being run, that a stdin file
// is whole and in the worker's inputs directory.
type inputRecorder struct {
	pool      *wasm.Pool
	inputsDir string

	mu   sync.Mutex
	seen []seenInput
}

type seenInput struct {
	stdinBytes int
	path       string
	size       int64 // of the file at the run, -1 if it was not there
}

func (r *inputRecorder) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	s := seenInput{stdinBytes: len(req.Stdin), path: req.StdinPath, size: -1}
	if req.StdinPath != "" {
		if st, err := os.Stat(req.StdinPath); err == nil {
			s.size = st.Size()
		}
	}
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
	return r.pool.Run(ctx, req)
}

func (r *inputRecorder) runs() []seenInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenInput(nil), r.seen...)
}

// streamGrid starts a dev grid (a worker and 5 storage-only peers, so inputs
// over the inline threshold are erasure-coded 4+2) whose worker runs tasks
// through an inputRecorder on a real pool.
func streamGrid(t testing.TB, dir string) (*Grid, *inputRecorder) {
	t.Helper()
	workerDir := filepath.Join(dir, "worker")
	pool, err := wasm.NewPool(context.Background(), wasm.PoolConfig{Size: 1, ModuleDir: wasm.ModuleDir(filepath.Join(workerDir, "modules")),
		CacheDir: filepath.Join(dir, "compile")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	rec := &inputRecorder{pool: pool, inputsDir: filepath.Join(workerDir, "inputs")}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Start(context.Background(), Config{DataDir: dir, Cores: 1, StoragePeers: 5, Worker: rec, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, rec
}

func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestGrid_ErasureCodedInputStreamsThroughAFile: a task whose input is over
// the inline threshold (so erasure-coded on the storage peers) gets it as a
// stdin file, whole, in the worker's inputs directory, not as bytes; cat
// gives it back exactly; and once the task is reported the file is gone.
// Inline inputs stay bytes. A file left in the inputs directory by an
// earlier run is removed when the worker starts.
func TestGrid_ErasureCodedInputStreamsThroughAFile(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "worker", "inputs", "left-by-a-crash.part")
	writeFile(t, stale, []byte("stale"))
	g, rec := streamGrid(t, dir)
	if names := dirEntries(t, rec.inputsDir); len(names) != 0 {
		t.Fatalf("inputs dir after start: %v, want the leftover removed", names)
	}
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	large, small := randomBytes(5<<20+3, 71), []byte("inline input")
	jf := catJob(t, wasmtest.Cat(), [][]byte{large, small})
	id := runCatJob(ctx, t, c, jf, [][]byte{large, small})

	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.Manifest(ctx, st.Spec.Inputs[0].Hash); err != nil || m.Size != int64(len(large)) {
		t.Fatalf("the large input is not erasure-coded: %+v %v", m, err)
	}
	var fromFile, fromBytes int
	for _, s := range rec.runs() {
		switch {
		case s.path != "":
			fromFile++
			if s.stdinBytes != 0 || filepath.Dir(s.path) != rec.inputsDir || strings.HasSuffix(s.path, ".part") || s.size != int64(len(large)) {
				t.Fatalf("stdin file run: %+v, want a whole %d-byte file in %s", s, len(large), rec.inputsDir)
			}
		case s.stdinBytes == len(small):
			fromBytes++
		}
	}
	if fromFile == 0 || fromBytes == 0 {
		t.Fatalf("runs %+v: want the large input as a file and the small one as bytes", rec.runs())
	}
	if names := dirEntries(t, rec.inputsDir); len(names) != 0 {
		t.Fatalf("inputs dir after the job: %v, want it empty", names)
	}
}

// TestGrid_InputThatFailsItsHashIsNeverRun: an input whose read fails at the
// very end (its bytes do not hash to its name: here a manifest that lies)
// fails the attempt without running the task, and leaves no file behind.
func TestGrid_InputThatFailsItsHashIsNeverRun(t *testing.T) {
	g, rec := streamGrid(t, t.TempDir())
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	real := randomBytes(1<<20, 72)
	h, m, err := c.PutBlobFrom(ctx, bytes.NewReader(real), int64(len(real)), client.BlobOptions{})
	if err != nil || m == nil {
		t.Fatalf("put: %s %+v %v", h, m, err)
	}
	other := randomBytes(len(real), 73) // what the lying manifest claims
	sum := sha256.Sum256(other)
	lie := *m
	lie.Hash = hex.EncodeToString(sum[:])
	if err := c.PutManifest(ctx, &lie, true); err != nil {
		t.Fatal(err)
	}
	mod := wasmtest.Cat()
	modHash := storage.Hash(mod)
	if err := c.PutBlob(ctx, modHash, mod); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "lie", ModuleHash: modHash, Tasks: 1,
		Inputs: []tasks.Input{{Name: "in", Hash: lie.Hash, Size: int64(len(other))}}, Memory: 16 << 20, MaxOutput: 4 << 20, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	sumJob, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
	if err != nil || sumJob.State != tasks.JobFailed {
		t.Fatalf("job: %+v %v, want it failed", sumJob, err)
	}
	st, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ts := st.TaskStats[0]; ts.ErrorKind != "worker" || !strings.Contains(ts.Error, "read input") || !strings.Contains(ts.Error, "hash") {
		t.Fatalf("task: %+v, want a worker error reading the input", ts)
	}
	if runs := rec.runs(); len(runs) != 0 {
		t.Fatalf("the task ran with %+v: an input that failed its hash must never be run", runs)
	}
	if names := dirEntries(t, rec.inputsDir); len(names) != 0 {
		t.Fatalf("inputs dir after the failed read: %v, want it empty", names)
	}
}

// peakHeapInput is the input of the peak heap test and benchmark.
const peakHeapInput = 64 << 20

// TestGrid_WorkerHeapStaysSmallWhileATaskReadsALargeInput: while one task
// reads a 64 MiB erasure-coded input to its end, the whole dev grid's Go
// heap (server, worker and storage peers: one process) grows by well under
// the input's size. It used to grow by more than twice the input (the input
// read into a growing buffer, then sent to the executor: 150 MiB measured);
// streamed through a file it is about 20 MiB of segments in flight.
func TestGrid_WorkerHeapStaysSmallWhileATaskReadsALargeInput(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: uploads and reads a 64 MiB blob")
	}
	run := peakHeapSetup(t)
	if growth := run(); growth > peakHeapInput*5/8 {
		t.Fatalf("heap grew by %d MiB while a task read a %d MiB input", growth>>20, peakHeapInput>>20)
	} else {
		t.Logf("heap grew by at most %.1f MiB while a task read a %d MiB input", float64(growth)/(1<<20), peakHeapInput>>20)
	}
}

// BenchmarkGrid_PeakHeapWhileATaskReadsA64MiBInput reports the heap growth
// of the test above.
func BenchmarkGrid_PeakHeapWhileATaskReadsA64MiBInput(b *testing.B) {
	run := peakHeapSetup(b)
	var peak uint64
	for b.Loop() {
		peak = max(peak, run())
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-growth-MiB")
}

// peakHeapSetup starts a grid holding a 64 MiB erasure-coded input and a
// module counting its stdin; each call of run runs one task on that input
// and returns how much the heap grew at most meanwhile.
func peakHeapSetup(tb testing.TB) (run func() uint64) {
	g, _ := streamGrid(tb, tb.TempDir())
	c := g.Client()
	ctx := context.Background()
	in := randomBytes(peakHeapInput, 74)
	h, m, err := c.PutBlobFrom(ctx, bytes.NewReader(in), peakHeapInput, client.BlobOptions{Pin: true})
	if err != nil || m == nil {
		tb.Fatalf("put: %+v %v", m, err)
	}
	mod := wasmtest.CountStdin()
	modHash := storage.Hash(mod)
	if err := c.PutBlob(ctx, modHash, mod); err != nil {
		tb.Fatal(err)
	}
	return func() uint64 {
		runtime.GC()
		base := heapBytes()
		stop := samplePeakHeap()
		id, err := c.Submit(ctx, &tasks.JobSpec{Name: "count", ModuleHash: modHash, Tasks: 1,
			Inputs: []tasks.Input{{Name: "in", Hash: h, Size: peakHeapInput}}, Memory: 16 << 20, MaxOutput: 1 << 10, Timeout: time.Minute,
			NoCache: true}) // measured again and again: run it each time
		if err != nil {
			tb.Fatal(err)
		}
		sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil)
		top := stop()
		if err != nil || sum.State != tasks.JobComplete {
			tb.Fatalf("job: %+v %v", sum, err)
		}
		res, err := c.Results(ctx, id)
		if err != nil || len(res) != 1 || len(res[0].Stdout) != 4 || binary.LittleEndian.Uint32(res[0].Stdout) != peakHeapInput {
			tb.Fatalf("result: %+v %v", res, err)
		}
		return top - min(top, base)
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// samplePeakHeap samples the heap every millisecond until the returned
// func is called, which returns the highest reading.
func samplePeakHeap() func() uint64 {
	done := make(chan struct{})
	result := make(chan uint64)
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		peak := heapBytes()
		for {
			select {
			case <-done:
				result <- max(peak, heapBytes())
				return
			case <-t.C:
				peak = max(peak, heapBytes())
			}
		}
	}()
	return func() uint64 { close(done); return <-result }
}
