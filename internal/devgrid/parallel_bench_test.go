//go:build linux || darwin

package devgrid

// Parallel efficiency of CPU-bound Go-built tasks (issue 15): the same job
// of 2,000 tasks of the 2.6 MB Go-built spin kernel (about 3.5 ms each)
// through a dev grid whose worker has 1 core and one whose worker has 2,
// from submit to the last result committed.
//
//	go test -run '^$' -bench ParallelEfficiency -benchtime 1x -v ./internal/devgrid/
//
// efficiency = (tasks/s on 2 cores) / (2 x tasks/s on 1 core). On a shared
// machine one pair of runs says little (the 1-core run swings with other
// work), so both grids run side by side and take turns: rounds of a 1-core
// and a 2-core job, in alternating order (1, 2, then 2, 1, ...), each
// round's efficiency from its own pair, and the figures reported are the
// medians of the rounds. Beside it, from the same 2-core runs, the ceiling
// the grid's own CPU leaves, t/(t+g): t the executors' CPU per task, g this
// process's (the servers' and workers') CPU per task, which includes the
// idle grid's (idle-grid-cpu-us/s, measured before the rounds, says how
// little that is). Each round is logged with the load average at its
// start, and each run with the CPUs the machine left idle and those other
// programs took meanwhile (/proc/stat, on Linux): with the grid's CPU and
// its executors', they account for every core-second of a run, so a round
// below its ceiling says whether executors waited (idle) or others took
// their CPUs.
//
// The timed jobs measure steady work: each grid first runs warm-up jobs of
// the same module (1,000 tasks a core), at least 3 and then until one's
// tasks cost its executors within a tenth of the last one's CPU (at most
// 5: the choice below came in the second or third at load 2). A worker
// makes choices for a module while its first jobs run (the engine; on
// wasmtime, after some 1,000 tasks' time outside the module, whether
// bounds-checked code pays for its compile), and one made during a timed
// job charged that job with a compile of seconds: it moved the efficiency
// of a round to 0.47 or 1.08. The warm-up jobs are logged, the first of
// them being what a fresh grid's first job meets.
//
// Beside each round, the machine's own: native-efficiency is the same
// spin natively, on one thread and then on two at once (each its own
// share of the work, about a second), the grids idle. On this 2-vCPU VM
// it moves from round to round (0.84-1.03 in one minute), which bounds
// what any round can measure.
//
// The process runs with the GOMAXPROCS `peergrid dev --cores 2` gives
// itself (runtimepolicy.ApplyWorkerGOMAXPROCS, the very same function; on
// 2 CPUs `--cores 1` gets the same), so the grid's own CPU is what a user
// meets; GOMAXPROCS in the environment wins, as it does for peergrid. The
// native spins run with a P per thread whatever it is.
//
// PEERGRID_PARALLEL_TASKS, PEERGRID_PARALLEL_ROUNDS (the spin's rounds) and
// PEERGRID_PARALLEL_PAIRS (rounds of the bench, default 3) change it.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/runtimepolicy"
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
	pairs := envInt("PEERGRID_PARALLEL_PAIRS", 3)
	module, err := gowasm.Build(context.Background(), os.DirFS(filepath.Join("..", "..", "wasm", "testdata", "spin")), "")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("module: wasm/testdata/spin, %.1f MB; %d tasks of %d rounds; %d rounds of 1 and 2 cores", float64(len(module))/1e6, n, rounds, pairs)
	defer runtimepolicy.ApplyWorkerGOMAXPROCS(os.Getenv, 2, slog.New(slog.DiscardHandler))()
	b.Logf("GOMAXPROCS %d on %d CPUs", runtime.GOMAXPROCS(0), runtime.NumCPU())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	grids := map[int]*spinGrid{}
	for _, cores := range []int{1, 2} {
		grids[cores] = startSpinGrid(b, ctx, cores, module, rounds)
	}
	idle := idleGridCPU(time.Second)
	b.ResetTimer()
	var all []parallelRound
	for i := range b.N * pairs {
		order := []int{1, 2}
		if i%2 == 1 {
			order = []int{2, 1}
		}
		round := parallelRound{native: nativeEfficiency()}
		for _, cores := range order {
			round.runs[cores-1] = grids[cores].timedJob(b, ctx, n, fmt.Sprintf("run-%d", i))
		}
		b.Logf("round %d: %s", i+1, round)
		all = append(all, round)
	}
	b.StopTimer()
	want := spinResults(n, rounds) // after the timing: these native spins would swamp it
	for _, cores := range []int{1, 2} {
		grids[cores].checkResults(b, ctx, want)
	}
	reportParallelRounds(b, all, idle)
}

// spinGrid is a dev grid of one core count with the spin module stored
// and warmed up, and the ids of the jobs it ran.
type spinGrid struct {
	cores  int
	grid   *Grid
	cl     *client.Client
	hash   string
	rounds int
	jobs   []string
}

func startSpinGrid(b testing.TB, ctx context.Context, cores int, module []byte, rounds int) *spinGrid {
	g, err := Start(ctx, Config{DataDir: b.TempDir(), Cores: cores, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	sg := &spinGrid{cores: cores, grid: g, cl: g.Client(), hash: storage.Hash(module), rounds: rounds}
	if err := sg.cl.PutBlob(ctx, sg.hash, module); err != nil {
		b.Fatal(err)
	}
	sg.warmUp(b, ctx)
	return sg
}

// Warming a grid up (see the top of this file).
const (
	warmUpTasksPerCore = 1000
	warmUpMinJobs      = 3
	warmUpMaxJobs      = 5
	warmUpSteady       = 0.1 // executors' CPU a task within this share of the last job's
)

// warmUp runs warm-up jobs until one costs the executors about what the
// last one did, logging each.
func (g *spinGrid) warmUp(b testing.TB, ctx context.Context) {
	last := 0.0
	for i := range warmUpMaxJobs {
		used := measureGridUsage(func() {
			runSpinJob(b, ctx, g.cl, g.hash, warmUpTasksPerCore*g.cores, g.rounds, fmt.Sprintf("warm-up-%d", i))
		})
		t := float64(used.executors.Microseconds()) / float64(warmUpTasksPerCore*g.cores) / 1e3
		b.Logf("%d core(s): warm-up job %d: t %.2f ms", g.cores, i+1, t)
		if i+1 >= warmUpMinJobs && math.Abs(t-last) <= warmUpSteady*last {
			return
		}
		last = t
	}
}

// spinRun is what one timed job measured.
type spinRun struct {
	cores   int
	load    string // the 1-minute load average at its start
	tasks   int
	elapsed time.Duration // submit to the last result committed, by the leader's clock
	window  time.Duration // what used covers: elapsed, the submit's call and the wait for the next poll
	used    gridUsage
	entries uint64 // Raft log entries the job took
}

func (r spinRun) rate() float64 { return float64(r.tasks) / r.elapsed.Seconds() }

// perTask is d per task in µs.
func (r spinRun) perTask(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(r.tasks)
}

func (r spinRun) gridCPU() float64 { return r.perTask(r.used.user + r.used.sys) }

// ceiling is t/(t+g): the efficiency the grid's own CPU leaves.
func (r spinRun) ceiling() float64 {
	t := r.perTask(r.used.executors)
	return t / (t + r.gridCPU())
}

// idleCores and otherCores are the CPUs the machine left idle, and those
// programs other than the grid used, on average over the job: what a
// round lost that is neither the grid's CPU nor its executors'. The usage
// window ends at the poll that saw the job done, up to cliPollInterval
// after its last result, while the grid idles: the idle CPUs of that tail
// (all of them, less what others took) are not the job's.
func (r spinRun) idleCores() float64 {
	tail := (r.window - r.elapsed).Seconds() * float64(runtime.NumCPU())
	tail -= r.otherCores() * (r.window - r.elapsed).Seconds()
	return max(r.used.idle.Seconds()-max(tail, 0), 0) / r.elapsed.Seconds()
}

func (r spinRun) otherCores() float64 { return r.used.others().Seconds() / r.window.Seconds() }

func (r spinRun) String() string {
	return fmt.Sprintf("%d core(s) at load %s: %.0f tasks/s, g %.0f µs, %.1f wake-ups, %.3f entries a task, t %.2f ms, idle %.3f, others %.3f cores",
		r.cores, r.load, r.rate(), r.gridCPU(), float64(r.used.wakeups)/float64(r.tasks),
		float64(r.entries)/float64(r.tasks), r.perTask(r.used.executors)/1e3, r.idleCores(), r.otherCores())
}

func (g *spinGrid) timedJob(b *testing.B, ctx context.Context, n int, name string) spinRun {
	stop := startProfile(b, g.cores, name)
	defer stop()
	run := spinRun{cores: g.cores, load: loadAverage(), tasks: n}
	raft := g.grid.Server.Store().Raft()
	index := raft.LastIndex()
	var id string
	start := time.Now()
	run.used = measureGridUsage(func() { id, run.elapsed = runSpinJob(b, ctx, g.cl, g.hash, n, g.rounds, name) })
	run.window = time.Since(start)
	run.entries = raft.LastIndex() - index
	g.jobs = append(g.jobs, id)
	return run
}

// checkResults checks every job's results against spins run here (once
// for all the jobs: each is seconds of CPU).
func (g *spinGrid) checkResults(b *testing.B, ctx context.Context, want []string) {
	for _, id := range g.jobs {
		jobcheck.Results(b, g.cl, id, len(want), func(i int) string { return want[i] })
	}
}

// spinResults is what task i of n spin tasks of rounds prints.
func spinResults(n, rounds int) []string {
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("%d\n", spin(rounds, uint64(i)))
	}
	return want
}

// parallelRound is a 1-core run and a 2-core run taken one after the
// other, and the machine's native efficiency just before them.
type parallelRound struct {
	runs   [2]spinRun
	native float64
}

func (r parallelRound) efficiency() float64 { return r.runs[1].rate() / (2 * r.runs[0].rate()) }

func (r parallelRound) String() string {
	return fmt.Sprintf("efficiency %.3f, ceiling %.3f, native %.3f; %s; %s",
		r.efficiency(), r.runs[1].ceiling(), r.native, r.runs[0], r.runs[1])
}

// nativeSpinRounds is about a second of spin on one thread here.
const nativeSpinRounds = 400_000_000

// nativeEfficiency is the machine's own parallel efficiency now: the time
// of nativeSpinRounds on one thread over the time of as much on each of
// two threads at once, each with a P of its own (the grids' process may
// have fewer: the spins are not the grid).
func nativeEfficiency() float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 2)))
	timed := func(threads int) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for i := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				nativeSink.Add(spin(nativeSpinRounds, uint64(i)))
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	one := timed(1)
	return float64(one) / float64(timed(2))
}

// nativeSink keeps the compiler from dropping the native spins.
var nativeSink atomic.Uint64

// reportParallelRounds reports the medians of the rounds (see the top of
// this file).
func reportParallelRounds(b *testing.B, rounds []parallelRound, idle float64) {
	med := func(f func(parallelRound) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = f(r)
		}
		return median(v)
	}
	for c, name := range []string{"1core", "2core"} {
		b.ReportMetric(med(func(r parallelRound) float64 { return r.runs[c].rate() }), name+"-tasks/s")
		b.ReportMetric(med(func(r parallelRound) float64 { return r.runs[c].gridCPU() }), name+"-grid-cpu-us/task")
	}
	two := func(f func(spinRun) float64) float64 {
		return med(func(r parallelRound) float64 { return f(r.runs[1]) })
	}
	b.ReportMetric(two(func(r spinRun) float64 { return r.perTask(r.used.sys) }), "2core-grid-sys-us/task")
	b.ReportMetric(two(func(r spinRun) float64 { return float64(r.used.wakeups) / float64(r.tasks) }), "2core-grid-wakeups/task")
	b.ReportMetric(two(func(r spinRun) float64 { return float64(r.entries) / float64(r.tasks) }), "2core-raft-entries/task")
	if rounds[0].runs[1].used.executors > 0 { // read where /proc has it
		b.ReportMetric(two(func(r spinRun) float64 { return r.perTask(r.used.executors) / 1e3 }), "2core-exec-cpu-ms/task")
		b.ReportMetric(two(spinRun.ceiling), "ceiling")
		b.ReportMetric(two(spinRun.idleCores), "2core-idle-cores")
		b.ReportMetric(two(spinRun.otherCores), "2core-other-cores")
	}
	b.ReportMetric(idle, "idle-grid-cpu-us/s")
	b.ReportMetric(med(func(r parallelRound) float64 { return r.native }), "native-efficiency")
	eff := med(parallelRound.efficiency)
	b.Logf("parallel efficiency 2 cores vs 1, median of %d rounds: %.3f", len(rounds), eff)
	b.ReportMetric(eff, "efficiency")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// idleGridCPU is this process's CPU in µs a second over d, the grids idle.
func idleGridCPU(d time.Duration) float64 {
	u := measureGridUsage(func() { time.Sleep(d) }) // a measurement of idle time, not a wait for a state
	return float64((u.user + u.sys).Microseconds()) / d.Seconds()
}

// loadAverage is the 1-minute load average, where /proc has it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// startProfile writes a CPU profile of this process over one timed run
// to $PEERGRID_PARALLEL_CPUPROFILE-cores=N-NAME.prof, when that is set (go
// test's -cpuprofile would also cover the results' check, whose native
// spin loops dwarf the grid); it returns what stops it.
func startProfile(b *testing.B, cores int, name string) func() {
	prefix := os.Getenv("PEERGRID_PARALLEL_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-cores=%d-%s.prof", prefix, cores, name))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
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
