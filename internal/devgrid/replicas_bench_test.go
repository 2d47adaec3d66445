//go:build linux || darwin

package devgrid

// What replicas cost (issue 14): the same 100,000-task tiny job as
// BenchmarkThroughput_Tiny100k, through two workers of one core, once with
// R=1 and once with R=2, Q=2, in one run; and the ledger's snapshot bytes
// per task with R=3. Figures are in BENCHMARKS.md.
//
//	go test -run '^$' -bench 'BenchmarkThroughput_Replicas100k' -benchtime 1x ./internal/devgrid/

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

// BenchmarkThroughput_Replicas100k reports, per replication:
//
//   - tasks/s from submit to the job complete;
//   - runs/task: executions per task (R=2, Q=2: 2 when no replica is lost);
//   - exec-cpu-us/task and grid-cpu-us/task as BenchmarkThroughput_Tiny100k;
//   - snapshot-B/task: what a finished task adds to a snapshot of the
//     ledger (the job's spec included, 100,000 tasks share it).
//
// 2x1-R1 and 2x1-R2Q2 run real executors (two workers of one core each: a
// task's replicas need distinct workers); 3x1-R3Q2-no-wasm answers at
// once, for the ledger's bytes of three replicas.
func BenchmarkThroughput_Replicas100k(b *testing.B) {
	for _, c := range []struct {
		name             string
		workers          int
		replicas, quorum int
		fake             bool
	}{
		{"2x1-R1", 2, 1, 1, false},
		{"2x1-R2Q2", 2, 2, 2, false},
		{"3x1-R3Q2-no-wasm", 3, 3, 2, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			runReplicasBench(b, c.workers, c.replicas, c.quorum, c.fake)
		})
	}
}

// countingRun counts executions (the work replicas multiply).
type countingRun struct {
	next worker.Runner
	runs *atomic.Int64
}

func (r countingRun) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	r.runs.Add(1)
	return r.next.Run(ctx, req)
}

func runReplicasBench(b *testing.B, workers, replicas, quorum int, fake bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := b.TempDir()
	var runs atomic.Int64
	var pools []*wasm.Pool
	runner := func(wdir string) worker.Runner {
		if fake {
			return countingRun{next: echoIndexRunner{}, runs: &runs}
		}
		pool, err := wasm.NewPool(ctx, wasm.PoolConfig{Size: 1, ModuleDir: wasm.ModuleDir(filepath.Join(wdir, "modules")),
			CacheDir: filepath.Join(dir, "compile")})
		if err != nil {
			b.Fatal(err)
		}
		pools = append(pools, pool)
		return countingRun{next: pool, runs: &runs}
	}
	g, err := Start(ctx, Config{DataDir: dir, Cores: 1, Worker: runner(filepath.Join(dir, "worker")), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	var stops []func()
	for i := 1; i < workers; i++ {
		wdir := filepath.Join(dir, fmt.Sprintf("worker%d", i))
		stop := startWorkerWith(b, g, fmt.Sprintf("bench-worker-%d", i), wdir, runner(wdir))
		defer stop()
		stops = append(stops, stop)
	}
	cl := g.Client()
	hash := putTinyModule(b, cl)
	emptySnap := snapshotSize(b, g)
	childrenBefore, selfBefore := rusageCPU(syscall.RUSAGE_CHILDREN), rusageCPU(syscall.RUSAGE_SELF)
	b.ResetTimer()
	var elapsed time.Duration
	var id string
	for range b.N {
		start := time.Now()
		spec := tasks.JobSpec{Name: "echo", ModuleHash: hash, Args: []string{"{index}"}, Tasks: throughputTasks,
			Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1, NoCache: true,
			Replicas: replicas, Quorum: quorum}
		if id, err = cl.Submit(ctx, &spec); err != nil {
			b.Fatal(err)
		}
		sum, err := cl.WaitJob(ctx, id, 5*time.Millisecond, nil)
		if err != nil || sum.State != tasks.JobComplete || sum.Done != throughputTasks {
			b.Fatalf("job %s: %+v %v", id, sum, err)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	self := rusageCPU(syscall.RUSAGE_SELF) - selfBefore
	n := float64(throughputTasks * b.N)
	snap := float64(snapshotSize(b, g)-emptySnap) / n
	jobcheck.Results(b, cl, id, throughputTasks, func(i int) string { return strconv.Itoa(i) + "\n" })
	for _, stop := range stops {
		stop()
	}
	g.Close()
	for _, p := range pools { // reaps the executors, so their CPU shows in RUSAGE_CHILDREN
		p.Close()
	}
	children := rusageCPU(syscall.RUSAGE_CHILDREN) - childrenBefore
	b.ReportMetric(n/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(runs.Load())/n, "runs/task")
	b.ReportMetric(float64(self.Microseconds())/n, "grid-cpu-us/task")
	b.ReportMetric(float64(children.Microseconds())/n, "exec-cpu-us/task")
	b.ReportMetric(snap, "snapshot-B/task")
	b.ReportMetric(0, "ns/op")
}

// startWorkerWith runs one more worker with the given runner against the
// grid's server; stop drains it.
func startWorkerWith(b *testing.B, g *Grid, id, dir string, runner worker.Runner) (stop func()) {
	b.Helper()
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: g.Client(), DataDir: dir, Cores: 1, Pool: runner,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait(); w.Close() }) }
}

// snapshotSize streams a snapshot of the server's ledger and counts its bytes.
func snapshotSize(tb testing.TB, g *Grid) int64 {
	tb.Helper()
	var w byteCounter
	if err := g.Server.Store().FSM().Snapshot().Write(&w); err != nil {
		tb.Fatal(err)
	}
	return int64(w)
}

type byteCounter int64

func (c *byteCounter) Write(p []byte) (int, error) { *c += byteCounter(len(p)); return len(p), nil }
