//go:build linux || darwin

package devgrid

// End-to-end throughput of issue 5: a job of 100,000 trivial tasks (the tiny
// module echoing "{index}") through one server and workers with 2 cores in
// all, real executor child processes, from submit to the last result
// committed. Figures and profiles are in BENCHMARKS.md.
//
//	go test -run '^$' -bench 'BenchmarkThroughput_Tiny100k' -benchtime 1x ./internal/devgrid/
//	go test -run '^$' -bench 'BenchmarkThroughput_Tiny100k/1x2$' -benchtime 1x -cpuprofile /tmp/tp.prof \
//	    -o /tmp/devgrid.test ./internal/devgrid/ && go tool pprof -top /tmp/devgrid.test /tmp/tp.prof
//
// The CPU profile covers this process (server, HTTP, Raft, the worker's
// lease/report loops); the executors are child processes, so their CPU is
// reported separately as exec-cpu-us/task (rusage of reaped children).

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker"
)

const throughputTasks = 100_000

// BenchmarkThroughput_Tiny100k reports tasks/s for a 100,000-task job:
//
//   - 1x2: the dev grid's one worker with Cores 2 (two executors);
//   - 2x1: two workers of one core each (two executors), both in this
//     process against the same server, as two volunteer machines would be;
//   - 1x2-no-wasm: 1x2 with a runner that answers at once without an
//     executor: the ceiling of the server, HTTP and Raft path alone;
//   - the -plain runs: the same with the API in plain HTTP (devgrid's
//     PlainHTTP), the baseline for what TLS costs per task.
func BenchmarkThroughput_Tiny100k(b *testing.B) {
	for _, c := range []struct {
		name           string
		workers, cores int
		fake           bool // no executors: the grid's own ceiling
		plain          bool // the API without TLS
	}{
		{"1x2", 1, 2, false, false},
		{"1x2-plain", 1, 2, false, true},
		{"2x1", 2, 1, false, false},
		{"1x2-no-wasm", 1, 2, true, false},
		{"1x2-no-wasm-plain", 1, 2, true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			dir := b.TempDir()
			cfg := Config{DataDir: dir, Cores: c.cores, PlainHTTP: c.plain, Logger: slog.New(slog.DiscardHandler)}
			if c.fake {
				cfg.Worker = echoIndexRunner{}
			}
			g, err := Start(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			var stops []func()
			for i := 1; i < c.workers; i++ {
				stop := startExtraWorker(b, g, fmt.Sprintf("bench-worker-%d", i), filepath.Join(dir, fmt.Sprintf("worker%d", i)), c.cores)
				defer stop()
				stops = append(stops, stop)
			}
			cl := g.Client()
			hash := putTinyModule(b, cl)
			childrenBefore, selfBefore := rusageCPU(syscall.RUSAGE_CHILDREN), rusageCPU(syscall.RUSAGE_SELF)
			entriesBefore := g.Server.Store().Raft().LastIndex()
			b.ResetTimer()
			var elapsed time.Duration
			var id string
			for range b.N {
				start := time.Now()
				id = submitEchoIndex(b, cl, hash, throughputTasks)
				sum, err := cl.WaitJob(ctx, id, 5*time.Millisecond, nil)
				if err != nil || sum.State != tasks.JobComplete || sum.Done != throughputTasks {
					b.Fatalf("job %s: %+v %v", id, sum, err)
				}
				elapsed += time.Since(start)
			}
			b.StopTimer()
			self := rusageCPU(syscall.RUSAGE_SELF) - selfBefore
			entries := g.Server.Store().Raft().LastIndex() - entriesBefore
			jobcheck.Results(b, cl, id, throughputTasks, func(i int) string { return strconv.Itoa(i) + "\n" })
			for _, stop := range stops { // reaps the executors, so their CPU shows in RUSAGE_CHILDREN
				stop()
			}
			g.Close()
			children := rusageCPU(syscall.RUSAGE_CHILDREN) - childrenBefore
			n := float64(throughputTasks * b.N)
			b.ReportMetric(n/elapsed.Seconds(), "tasks/s")
			b.ReportMetric(float64(self.Microseconds())/n, "grid-cpu-us/task")
			b.ReportMetric(float64(children.Microseconds())/n, "exec-cpu-us/task")
			b.ReportMetric(n/float64(entries), "tasks/raft-entry")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// echoIndexRunner answers as the tiny module would, without running it.
type echoIndexRunner struct{}

func (echoIndexRunner) Run(_ context.Context, req *wasm.Request) (*wasm.Result, error) {
	return &wasm.Result{Stdout: []byte(req.Args[0] + "\n"), Engine: wasm.EngineWazero}, nil
}

// startExtraWorker runs one more worker with its own executor pool against
// the grid's server; stop drains it.
func startExtraWorker(b *testing.B, g *Grid, id, dir string, cores int) (stop func()) {
	b.Helper()
	w, err := worker.New(context.Background(), worker.Config{ID: id, Client: g.Client(), DataDir: dir, Cores: cores, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait(); w.Close() }) }
}

func putTinyModule(b *testing.B, c *client.Client) string {
	b.Helper()
	mod := examples.Tiny()
	hash := storage.Hash(mod)
	if err := c.PutBlob(context.Background(), hash, mod); err != nil {
		b.Fatal(err)
	}
	return hash
}

// submitEchoIndex submits n tasks of the tiny module; task i prints "i\n".
func submitEchoIndex(b *testing.B, c *client.Client, hash string, n int) string {
	b.Helper()
	id, err := c.Submit(context.Background(), &tasks.JobSpec{Name: "echo", ModuleHash: hash, Args: []string{"{index}"},
		Tasks: n, Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1,
		NoCache: true}) // measured again and again: run it each time
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// rusageCPU is user+system CPU time of this process or its reaped children.
func rusageCPU(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
