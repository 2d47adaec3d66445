//go:build linux

package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/internal/procstat"
)

// Parallel efficiency of the engine alone (issue 15): the 2.6 MB Go-built
// spin module, a few ms a task, through a Pool of 1 executor with 1 caller,
// then a Pool of 2 with 2 callers, beside the same computation natively in
// 1 and 2 goroutines (what this machine's cores give to pure compute right
// now). No grid: what two executors lose here, the grid cannot win back.
//
//	go test -run '^$' -bench GoModuleParallel -benchtime 400x ./wasm/
//
// b.N is the tasks each caller runs. PEERGRID_PARALLEL_PIN=1 pins executor
// i to CPU i (taskset), to tell the kernel's placement from the engine. Per task it reports the wall time in
// the caller, the time inside _start, and the executors' CPU time, minor
// page faults (from /proc/PID/stat) and context switches (from each
// thread's /proc status).
func BenchmarkGoModuleParallel(b *testing.B) {
	if !wasmtimeBuilt {
		b.Skip("no wasmtime in this build")
	}
	data, err := gowasm.Build(context.Background(), os.DirFS("testdata/spin"), "")
	if err != nil {
		b.Fatal(err)
	}
	hash := put(b, data)
	rounds := 1_500_000
	if v, err := strconv.Atoi(os.Getenv("PEERGRID_SPIN_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	b.Logf("module: testdata/spin, %.1f MB, %d rounds", float64(len(data))/1e6, rounds)
	rate := map[string]float64{}
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("native/callers=%d", n), func(b *testing.B) {
			rate[b.Name()] = runParallel(b, n, func(int) { spinNative(rounds, uint64(b.N)) })
		})
		b.Run(fmt.Sprintf("wasmtime/executors=%d", n), func(b *testing.B) {
			rate[b.Name()] = benchPoolParallel(b, hash, n, rounds)
		})
	}
	for _, kind := range []string{"native/callers", "wasmtime/executors"} {
		one, two := rate[b.Name()+"/"+kind+"=1"], rate[b.Name()+"/"+kind+"=2"]
		if one > 0 && two > 0 {
			b.Logf("%s: parallel efficiency 2 vs 1: %.3f (%.1f vs %.1f tasks/s)", kind, two/(2*one), two, one)
		}
	}
}

// spinSink keeps spinNative's result alive.
var spinSink uint64

// spinNative is testdata/spin's loop, natively.
func spinNative(rounds int, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x *= 0xbf58476d1ce4e5b9
	}
	spinSink += x
}

// runParallel runs task b.N times on each of n goroutines and returns the
// tasks per second. It also reports the cores that other programs used
// meanwhile (the machine's busy time less this process's and, given, the
// executors'): on a shared machine that is what the callers did not get.
func runParallel(b *testing.B, n int, task func(caller int), children ...func() time.Duration) float64 {
	idle0, busy0 := machineCPU(b)
	self0 := selfCPU()
	var kids0 time.Duration
	for _, c := range children {
		kids0 += c()
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				task(c)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	idle1, busy1 := machineCPU(b)
	others := busy1 - busy0 - (selfCPU() - self0)
	for _, c := range children {
		others -= c()
	}
	others += kids0
	b.ReportMetric(others.Seconds()/b.Elapsed().Seconds(), "other-cores")
	b.ReportMetric((idle1-idle0).Seconds()/b.Elapsed().Seconds(), "idle-cores")
	tasks := float64(b.N * n)
	r := tasks / b.Elapsed().Seconds()
	b.ReportMetric(r, "tasks/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())*float64(n)/tasks/1e6, "wall-ms/task")
	b.ReportMetric(0, "ns/op")
	return r
}

// benchPoolParallel runs the spin module on a Pool of n wasmtime executors
// with n callers.
func benchPoolParallel(b *testing.B, hash string, n, rounds int) float64 {
	p, err := NewPool(context.Background(), PoolConfig{Size: n, CacheDir: testCacheDir, ModuleDir: testModules,
		Engines: []string{EngineWasmtime}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := func(i int) *Request {
		return &Request{ModuleHash: hash, Name: "spin", Engine: EngineWasmtime, Args: []string{strconv.Itoa(rounds), strconv.Itoa(i)}}
	}
	warm := make(chan error, 4*n)
	for i := range 4 * n { // compile (or load) in every executor, off the clock
		go func() { _, err := p.Run(context.Background(), req(i)); warm <- err }()
	}
	for range 4 * n {
		if err := <-warm; err != nil {
			b.Fatal(err)
		}
	}
	if os.Getenv("PEERGRID_PARALLEL_PIN") == "1" {
		pinExecutors(b, p)
	}
	before := executorsStat(b, p)
	executorsCPU := func() time.Duration { return executorsStat(b, p).cpu }
	var mu sync.Mutex
	var inside, ran time.Duration
	r := runParallel(b, n, func(c int) {
		res, err := p.Run(context.Background(), req(c))
		if err != nil {
			b.Error(err)
			return
		}
		mu.Lock()
		inside += res.ModuleTime
		ran += res.Duration
		mu.Unlock()
	}, executorsCPU)
	after := executorsStat(b, p)
	tasks := float64(b.N * n)
	b.ReportMetric(float64(inside.Nanoseconds())/tasks/1e6, "module-ms/task")
	b.ReportMetric(float64(ran.Nanoseconds())/tasks/1e6, "task-ms/task")
	b.ReportMetric(float64((after.cpu-before.cpu).Nanoseconds())/tasks/1e6, "executor-cpu-ms/task")
	b.ReportMetric(float64(after.minorFaults-before.minorFaults)/tasks, "minflt/task")
	b.ReportMetric(float64(after.switches-before.switches)/tasks, "executor-switches/task")
	return r
}

// pinExecutors binds each of p's executors, all its threads, to a CPU of
// its own.
func pinExecutors(b *testing.B, p *Pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cpu := 0
	for proc := range p.live {
		out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(cpu%runtime.NumCPU()), strconv.Itoa(proc.pid)).CombinedOutput()
		if err != nil {
			b.Fatalf("taskset: %v: %s", err, out)
		}
		cpu++
	}
}

// procStat is the sum over a pool's executors of what /proc/PID/stat says.
type procStat struct {
	cpu         time.Duration
	minorFaults uint64
	switches    int64 // context switches of all its threads
}

func executorsStat(b *testing.B, p *Pool) procStat {
	p.mu.Lock()
	pids := make([]int, 0, len(p.live))
	for proc := range p.live {
		pids = append(pids, proc.pid)
	}
	p.mu.Unlock()
	var s procStat
	for _, pid := range pids {
		cpu, ok := processCPUTime(pid)
		if !ok {
			b.Fatalf("executor %d: no CPU time", pid)
		}
		s.cpu += cpu
		s.minorFaults += minorFaults(b, pid)
		v, n := contextSwitches(b, pid)
		s.switches += v + n
	}
	return s
}

// minorFaults is field 10 of /proc/PID/stat.
func minorFaults(b *testing.B, pid int) uint64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	v, err := strconv.ParseUint(f[10-3], 10, 64)
	if err != nil {
		b.Fatalf("executor %d: minflt %q: %v", pid, f[10-3], err)
	}
	return v
}

// machineCPU is the time all CPUs spent idle and busy so far
// (procstat.MachineCPU).
func machineCPU(b *testing.B) (idle, busy time.Duration) {
	idle, busy, err := procstat.MachineCPU()
	if err != nil {
		b.Fatal(err)
	}
	return idle, busy
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
