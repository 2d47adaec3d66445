package wasm

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/internal/wasmtest"
)

// tinyModule is examples/tiny/tiny.wasm (a C module that echoes its args)
// when it exists, else the hand-assembled echo module.
func tinyModule(b *testing.B) (hash, name string) {
	if data, err := os.ReadFile(filepath.Join("..", "examples", "tiny", "tiny.wasm")); err == nil {
		return put(b, data), "examples/tiny/tiny.wasm"
	}
	return put(b, wasmtest.EchoArgs()), "wasmtest.EchoArgs"
}

func reportPerOp(b *testing.B) {
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perOp.Nanoseconds())/1e6, "ms/op")
	b.ReportMetric(float64(time.Second)/float64(perOp.Nanoseconds()), "tasks/s")
}

// mustRun runs req once and fails the benchmark on any error.
func mustRun(b testing.TB, e Engine, req *Request) *Result {
	res, err := e.Run(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// taskCPUMeter measures the CPU a benchmark's tasks cost, per task: in the
// pool's executors (exec-cpu-us/task, Linux) and in this process, the
// caller's side of the pipes (host-cpu-us/task, Unix). The executors must
// be the same ones at the end (no task may replace one).
type taskCPUMeter struct {
	pool       *Pool
	pids       []int
	exec, host time.Duration
	execOK     bool
}

func startCPUMeter(p *Pool) *taskCPUMeter {
	m := &taskCPUMeter{pool: p, pids: p.PIDs()}
	m.exec, m.execOK = cpuTimeOf(m.pids)
	m.host = selfCPUTime()
	return m
}

func (m *taskCPUMeter) report(b *testing.B) {
	host := selfCPUTime() - m.host
	if m.host > 0 {
		b.ReportMetric(float64(host.Microseconds())/float64(b.N), "host-cpu-us/task")
	}
	exec, ok := cpuTimeOf(m.pids)
	if m.execOK && ok {
		b.ReportMetric(float64((exec-m.exec).Microseconds())/float64(b.N), "exec-cpu-us/task")
	}
}

// Warm start: instantiate and run a tiny module that is already compiled.
func BenchmarkWarmStart(b *testing.B) {
	hash, name := tinyModule(b)
	b.Log("module:", name)
	eng := newEngine(b, EngineConfig{CacheDir: testCacheDir})
	req := &Request{ModuleHash: hash, Args: []string{"hello", "world"}}
	mustRun(b, eng, req) // compile outside the timing
	b.ResetTimer()
	for b.Loop() {
		mustRun(b, eng, req)
	}
	reportPerOp(b)
}

// Per-task cost of a tiny module on each engine: in-process, and through
// one executor.
func BenchmarkEngineTaskCost(b *testing.B) {
	hash, name := tinyModule(b)
	b.Log("module:", name)
	for _, engine := range AvailableEngines() {
		req := &Request{ModuleHash: hash, Args: []string{"hello", "world"}, Engine: engine}
		b.Run(engine+"/engine", func(b *testing.B) {
			eng, err := NewEngine(context.Background(), engine, EngineConfig{CacheDir: testCacheDir, ModuleDir: testModules})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close(context.Background())
			mustRun(b, eng, req)
			b.ResetTimer()
			for b.Loop() {
				mustRun(b, eng, req)
			}
			reportPerOp(b)
		})
		b.Run(engine+"/pool", func(b *testing.B) {
			p := poolEngine{newPool(b, 1)}
			mustRun(b, p, req)
			cpu := startCPUMeter(p.Pool)
			b.ResetTimer()
			for b.Loop() {
				mustRun(b, p, req)
			}
			b.StopTimer()
			cpu.report(b)
			reportPerOp(b)
		})
	}
}

// Per-task cost of a tiny module: in-process, through one executor, and
// through NumCPU executors in parallel.
func BenchmarkTaskCost(b *testing.B) {
	hash, name := tinyModule(b)
	b.Log("module:", name)
	req := &Request{ModuleHash: hash, Args: []string{"hello", "world"}}
	b.Run("engine", func(b *testing.B) {
		eng := newEngine(b, EngineConfig{CacheDir: testCacheDir})
		mustRun(b, eng, req)
		b.ResetTimer()
		for b.Loop() {
			mustRun(b, eng, req)
		}
		reportPerOp(b)
	})
	b.Run("pool", func(b *testing.B) {
		p := poolEngine{newPool(b, 1)}
		mustRun(b, p, req)
		cpu := startCPUMeter(p.Pool)
		b.ResetTimer()
		for b.Loop() {
			mustRun(b, p, req)
		}
		b.StopTimer()
		cpu.report(b)
		reportPerOp(b)
	})
	b.Run("pool-parallel", func(b *testing.B) {
		p := poolEngine{newPool(b, runtime.NumCPU())}
		for range runtime.NumCPU() {
			mustRun(b, p, req) // warm every executor, roughly
		}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mustRun(b, p, req)
			}
		})
		reportPerOp(b)
	})
}

// buildGuest builds a Go program under testdata (cached by source hash) and
// stores it.
func buildGuest(b *testing.B, dir string) string {
	data, err := gowasm.Build(context.Background(), os.DirFS(filepath.Join("testdata", dir)), "")
	if err != nil {
		b.Fatal(err)
	}
	return put(b, data)
}

// mmap-backed linear memory against Go-heap memory, on a Go kernel that
// allocates and sorts 4 slices of 8 MiB: alone, and with the host busy
// allocating (as a worker is), which makes the host GC run during tasks.
func BenchmarkMemoryAllocator(b *testing.B) {
	hash := buildGuest(b, "sortkernel")
	req := &Request{ModuleHash: hash, Args: []string{"4", strconv.Itoa(1 << 20)}}
	for _, mode := range []struct {
		name       string
		heap, busy bool
	}{{"mmap", false, false}, {"heap", true, false}, {"mmap-busyhost", false, true}, {"heap-busyhost", true, true}} {
		b.Run(mode.name, func(b *testing.B) {
			eng := newEngine(b, EngineConfig{CacheDir: testCacheDir, HeapMemory: mode.heap})
			mustRun(b, eng, req)
			if mode.busy {
				stop := churnHeap()
				defer stop()
			}
			b.ResetTimer()
			for b.Loop() {
				mustRun(b, eng, req)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
		})
	}
}

// churnHeap allocates short-lived garbage on another goroutine until
// stopped, so the host GC cycles while tasks run.
func churnHeap() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var keep [][]byte
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			keep = append(keep, make([]byte, 64<<10))
			if len(keep) == 256 { // 16 MiB live at most
				keep = keep[:0]
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // leave the task a CPU
			}
		}
	}()
	return func() { close(done); <-finished }
}

// primesN is large enough that the run, not instantiation, dominates.
const primesN = 20_000_000

// The primes kernel (testdata/primes) as a wasm task against the same Go
// code compiled natively (countPrimes in primes_native_test.go); reports
// each time and their ratio.
func BenchmarkPrimesWasmVsNative(b *testing.B) {
	hash := buildGuest(b, "primes")
	eng := newEngine(b, EngineConfig{CacheDir: testCacheDir})
	req := &Request{ModuleHash: hash, Args: []string{strconv.Itoa(primesN)}}
	want := strconv.Itoa(countPrimes(primesN)) + "\n"
	if got := string(mustRun(b, eng, req).Stdout); got != want {
		b.Fatalf("wasm counted %q, native %q", got, want)
	}
	var wasmTime, nativeTime time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		mustRun(b, eng, req)
		wasmTime += time.Since(start)
		start = time.Now()
		if countPrimes(primesN) == 0 {
			b.Fatal("no primes")
		}
		nativeTime += time.Since(start)
	}
	b.ReportMetric(float64(wasmTime.Nanoseconds())/1e6/float64(b.N), "wasm-ms/op")
	b.ReportMetric(float64(nativeTime.Nanoseconds())/1e6/float64(b.N), "native-ms/op")
	b.ReportMetric(float64(wasmTime)/float64(nativeTime), "wasm/native")
}

// warmUp runs req until the engine has settled how it runs the module,
// outside the timing: the first run compiles (or loads from the disk
// cache); wasmtime tries a module's second memory mode only once its runs'
// time outside the module adds up to that compile's time, then compares
// modeTrials warm runs of each (memoryModes). Engines with nothing to
// settle just run it longer.
//
// Time outside the module is counted by the wall clock, as the benchmark
// counts it (through a pool a task's Duration leaves out the teardown its
// executor does after answering, which the engine's own count includes),
// up to twice the compile: the engine's count is a little smaller.
func warmUp(b *testing.B, e Engine, req *Request) {
	start := time.Now()
	mustRun(b, e, req)
	compile := time.Since(start)
	var outside time.Duration
	for outside < 2*compile {
		began := time.Now()
		res := mustRun(b, e, req)
		outside += time.Since(began) - res.ModuleTime
	}
	for range 4 * (modeTrials + 1) {
		mustRun(b, e, req)
	}
}

// Per-task cost outside the module for a big Go-built module (testdata/spin,
// 2.6 MB, 1,000 rounds: its run is the Go runtime's start): what a task
// costs beyond its own run (instantiate, WASI setup, tear down, and through
// a Pool the executor round trip), on each engine, in-process and through
// one executor. outside-ms/task is the wall time per task less the time
// inside _start (Result.ModuleTime); module-ms/task is that time, which
// also holds the page faults of fresh memory.
func BenchmarkGoModuleTaskCost(b *testing.B) {
	data, err := gowasm.Build(context.Background(), os.DirFS("testdata/spin"), "")
	if err != nil {
		b.Fatal(err)
	}
	hash := put(b, data)
	b.Logf("module: testdata/spin, %.1f MB", float64(len(data))/1e6)
	req := &Request{ModuleHash: hash, Name: "spin", Args: []string{"1000", "1"}}
	for _, engine := range AvailableEngines() {
		for _, where := range []string{"engine", "pool"} {
			b.Run(engine+"/"+where, func(b *testing.B) {
				var e Engine
				if where == "engine" {
					e = sharedEngineNamed(b, engine)
				} else {
					p, err := NewPool(context.Background(), PoolConfig{Size: 1, CacheDir: testCacheDir, ModuleDir: testModules, Engines: []string{engine}})
					if err != nil {
						b.Fatal(err)
					}
					defer p.Close()
					e = poolEngine{p}
				}
				r := *req
				r.Engine = engine
				warmUp(b, e, &r)
				var inside time.Duration
				b.ResetTimer()
				for b.Loop() {
					inside += mustRun(b, e, &r).ModuleTime
				}
				n := float64(b.N)
				b.ReportMetric(float64((b.Elapsed()-inside).Nanoseconds())/1e6/n, "outside-ms/task")
				b.ReportMetric(float64(inside.Nanoseconds())/1e6/n, "module-ms/task")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/n, "ms/task")
			})
		}
	}
}
