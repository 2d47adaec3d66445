//go:build linux || darwin

package devgrid

// Parallel efficiency of CPU-bound Go-built tasks (issue 15): the same job
// of 2,000 tasks of the 2.6 MB Go-built spin kernel (about 3.5 ms each)
// through a dev grid whose worker has 1 core, then 2 cores, from submit to
// the last result committed.
//
//	go test -run '^$' -bench ParallelEfficiency -benchtime 1x -v ./internal/devgrid/
//
// efficiency = (tasks/s on 2 cores) / (2 x tasks/s on 1 core). Each grid
// first runs a warm-up job of the same module (compile, the engine choice),
// so the timed jobs measure steady work. PEERGRID_PARALLEL_TASKS and
// PEERGRID_PARALLEL_ROUNDS change the job.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// spinRounds makes a spin task about 3.5 ms on wasmtime here (the Go
// runtime's start included).
const spinRounds = 1_500_000

// spin is wasm/testdata/spin's computation, natively, to check results.
func spin(rounds int, seed uint64) uint64 {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x *= 0xbf58476d1ce4e5b9
	}
	return x
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func BenchmarkParallelEfficiency_GoKernel(b *testing.B) {
	n, rounds := envInt("PEERGRID_PARALLEL_TASKS", 2000), envInt("PEERGRID_PARALLEL_ROUNDS", spinRounds)
	module, err := gowasm.Build(context.Background(), os.DirFS(filepath.Join("..", "..", "wasm", "testdata", "spin")), "")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("module: wasm/testdata/spin, %.1f MB; %d tasks of %d rounds", float64(len(module))/1e6, n, rounds)
	rate := map[int]float64{}
	for _, cores := range []int{1, 2} {
		b.Run(fmt.Sprintf("cores=%d", cores), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			g, err := Start(ctx, Config{DataDir: b.TempDir(), Cores: cores, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			cl := g.Client()
			hash := storage.Hash(module)
			if err := cl.PutBlob(ctx, hash, module); err != nil {
				b.Fatal(err)
			}
			runSpinJob(b, ctx, cl, hash, 4*cores, rounds, "warm-up")
			stopProfile := startProfile(b, cores)
			b.ResetTimer()
			var elapsed, ran time.Duration
			var used gridUsage
			var ids []string
			for i := range b.N {
				before := readGridUsage()
				id, took := runSpinJob(b, ctx, cl, hash, n, rounds, fmt.Sprint("run-", i))
				elapsed += took
				u := readGridUsage().sub(before)
				used.user, used.sys, used.wakeups, used.executors = used.user+u.user, used.sys+u.sys, used.wakeups+u.wakeups, used.executors+u.executors
				ids = append(ids, id)
			}
			b.StopTimer()
			stopProfile()
			for _, id := range ids { // after the profile: the check's native spins would swamp it
				ran += taskTime(b, ctx, cl, id)
				jobcheck.Results(b, cl, id, n, func(i int) string { return fmt.Sprintf("%d\n", spin(rounds, uint64(i))) })
			}
			tasksRun := float64(n * b.N)
			rate[cores] = tasksRun / elapsed.Seconds()
			b.ReportMetric(rate[cores], "tasks/s")
			b.ReportMetric(float64(ran.Microseconds())/tasksRun/1000, "task-ms")
			b.ReportMetric(float64((used.user+used.sys).Microseconds())/tasksRun, "grid-cpu-us/task")
			b.ReportMetric(float64(used.sys.Microseconds())/tasksRun, "grid-sys-us/task")
			b.ReportMetric(float64(used.wakeups)/tasksRun, "grid-wakeups/task")
			if used.executors > 0 { // read where /proc has it
				// The executors' CPU, beside task-ms (their wall time, which
				// a loaded machine stretches): t in the ceiling t/(t+g).
				b.ReportMetric(float64(used.executors.Microseconds())/tasksRun/1000, "exec-cpu-ms/task")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
	if rate[1] > 0 && rate[2] > 0 {
		eff := rate[2] / (2 * rate[1])
		b.Logf("parallel efficiency 2 cores vs 1: %.2f (%.0f vs %.0f tasks/s)", eff, rate[2], rate[1])
		b.ReportMetric(eff, "efficiency")
	}
}

// startProfile writes a CPU profile of this process over the timed runs
// of one core count to $PEERGRID_PARALLEL_CPUPROFILE-cores=N.prof, when that
// is set (go test's -cpuprofile would also cover the results' check, whose
// native spin loops dwarf the grid); it returns what stops it.
func startProfile(b *testing.B, cores int) func() {
	prefix := os.Getenv("PEERGRID_PARALLEL_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-cores=%d.prof", prefix, cores))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// taskTime is the sum of the tasks' run times (in their executors).
func taskTime(b *testing.B, ctx context.Context, cl *client.Client, id string) time.Duration {
	res, err := cl.Results(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, r := range res {
		d += r.Duration
	}
	return d
}

// runSpinJob submits n spin tasks (task i seeded by i), waits for them and
// returns the job's id and its time from submit to the last result
// committed, as the leader stamped them.
func runSpinJob(b testing.TB, ctx context.Context, cl *client.Client, hash string, n, rounds int, name string) (string, time.Duration) {
	b.Helper()
	id, err := cl.Submit(ctx, &tasks.JobSpec{Name: name, ModuleHash: hash, Args: []string{strconv.Itoa(rounds), "{index}"},
		Tasks: n, Timeout: time.Minute, Memory: 64 << 20, MaxOutput: 1 << 10, Retries: 1, Engine: tasks.EngineAuto,
		NoCache: true}) // measured again and again: run it each time
	if err != nil {
		b.Fatal(err)
	}
	// Polled as `peergrid job submit --wait` polls (every 200 ms): a poll
	// every 20 ms was a tenth of the grid's CPU per task, which no user
	// meets; the time is the leader's, so the poll does not round it.
	sum, err := cl.WaitJob(ctx, id, cliPollInterval, nil)
	if err != nil || sum.State != tasks.JobComplete || sum.Done != n || sum.FinishedAt == nil {
		b.Fatalf("job %s: %+v %v", id, sum, err)
	}
	return id, sum.FinishedAt.Sub(sum.SubmittedAt)
}

// cliPollInterval is how often the CLI polls a job it waits for.
const cliPollInterval = 200 * time.Millisecond
