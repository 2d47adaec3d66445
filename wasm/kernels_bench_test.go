package wasm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/gowasm"
)

// The benchmark kernels (testdata/kernels): C kernels built for wasm32-wasi
// by testdata/kernels/c/build.sh (the .wasm files are committed), Go
// kernels built for wasip1 by gowasm at bench time (cached). Each is also
// built natively from the same source at bench time: C with cc -O2, Go
// with go build.
type benchKernel struct {
	name, lang string
	src        string // C file, or Go package directory
	args       []string
}

var benchKernels = []benchKernel{
	{"gemm", "C", "testdata/kernels/c/gemm.c", nil},
	{"jacobi-2d", "C", "testdata/kernels/c/jacobi2d.c", nil},
	{"lcs", "C", "testdata/kernels/c/lcs.c", nil},
	{"floyd-warshall", "C", "testdata/kernels/c/floyd.c", nil},
	{"primes", "Go", "testdata/primes", []string{"20000000"}},
	{"nbody", "Go", "testdata/kernels/go/nbody", nil},
}

func (k benchKernel) module(b *testing.B) []byte {
	if k.lang == "C" {
		data, err := os.ReadFile(strings.TrimSuffix(k.src, ".c") + ".wasm")
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	data, err := gowasm.Build(context.Background(), os.DirFS(k.src), "")
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// native builds the kernel for this machine into dir, or returns "" and
// why not.
func (k benchKernel) native(dir string) (string, string) {
	out := filepath.Join(dir, k.name)
	var cmd *exec.Cmd
	if k.lang == "C" {
		cc, err := exec.LookPath("cc")
		if err != nil {
			return "", "no C compiler (cc) on PATH: native column skipped"
		}
		cmd = exec.Command(cc, "-O2", "-o", out, k.src)
	} else {
		cmd = exec.Command("go", "build", "-o", out, "./"+k.src)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("native build failed: %v: %s", err, msg)
	}
	return out, ""
}

// kernelRatios collects, per kernel, time on each engine over native.
var kernelRatios struct {
	sync.Mutex
	rows []kernelRow
}

type kernelRow struct {
	name, lang string
	native     time.Duration
	ratio      map[string]float64 // engine (or "auto") -> time / native
	chosen     string
}

// BenchmarkKernels runs each kernel natively and through a Pool executor
// on every engine and on auto, in one run, and reports each as a ratio to
// native (lower is better). Run with -benchtime Nx; each iteration runs
// every variant once, interleaved. The ratios compare each variant's
// fastest iteration (the machine is shared: the minimum is the least
// disturbed figure); -ms metrics are means. -v prints the table.
func BenchmarkKernels(b *testing.B) {
	variants := append(AvailableEngines(), EngineAuto)
	pool, err := NewPool(context.Background(), PoolConfig{Size: 1, CacheDir: testCacheDir, ModuleDir: testModules})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	nativeDir := b.TempDir()
	for _, k := range benchKernels {
		b.Run(k.name, func(b *testing.B) {
			hash := put(b, k.module(b))
			bin, why := k.native(nativeDir)
			if why != "" {
				b.Log(k.name + ": " + why)
			}
			want := runKernelWarm(b, pool, hash, k, variants)
			if bin != "" {
				if out, err := exec.Command(bin, k.args...).Output(); err != nil || !bytes.Equal(out, want) {
					b.Fatalf("native printed %q (%v), wasm %q", out, err, want)
				}
			}
			total, fastest := map[string]time.Duration{}, map[string]time.Duration{}
			record := func(v string, d time.Duration) {
				total[v] += d
				if f, ok := fastest[v]; !ok || d < f {
					fastest[v] = d
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if bin != "" {
					start := time.Now()
					if err := exec.Command(bin, k.args...).Run(); err != nil {
						b.Fatal(err)
					}
					record("native", time.Since(start))
				}
				for _, v := range variants {
					start := time.Now()
					runKernel(b, pool, hash, k, v, want)
					record(v, time.Since(start))
				}
			}
			row := kernelRow{name: k.name, lang: k.lang, ratio: map[string]float64{}}
			row.chosen, _ = pool.chooser.Chosen(hash, 0)
			for _, v := range variants {
				b.ReportMetric(float64(total[v].Milliseconds())/float64(b.N), v+"-ms")
			}
			if bin != "" {
				row.native = fastest["native"]
				b.ReportMetric(float64(total["native"].Milliseconds())/float64(b.N), "native-ms")
				for _, v := range variants {
					row.ratio[v] = float64(fastest[v]) / float64(fastest["native"])
					b.ReportMetric(row.ratio[v], v+"-x")
				}
			}
			kernelRatios.Lock()
			kernelRatios.rows = append(kernelRatios.rows, row)
			kernelRatios.Unlock()
		})
	}
	logKernelTable(b, variants)
}

// runKernelWarm compiles the kernel on every engine and runs auto until it
// has settled, outside the timing, and returns its output.
func runKernelWarm(b *testing.B, pool *Pool, hash string, k benchKernel, variants []string) []byte {
	var want []byte
	for _, v := range variants {
		res := runKernel(b, pool, hash, k, v, want)
		want = res.Stdout
	}
	for range 50 {
		if _, ok := pool.chooser.Chosen(hash, 0); ok {
			break
		}
		runKernel(b, pool, hash, k, EngineAuto, want)
	}
	return want
}

func runKernel(b *testing.B, pool *Pool, hash string, k benchKernel, engine string, want []byte) *Result {
	res, err := pool.Run(context.Background(), &Request{ModuleHash: hash, Name: k.name, Args: k.args, Engine: engine})
	if err != nil {
		b.Fatalf("%s on %s: %v", k.name, engine, err)
	}
	if want != nil && !bytes.Equal(res.Stdout, want) {
		b.Fatalf("%s on %s printed %q, want %q (the same as every engine)", k.name, res.Engine, res.Stdout, want)
	}
	return res
}

// logKernelTable logs the ratios of every kernel run so far and their
// geometric means per language.
func logKernelTable(b *testing.B, variants []string) {
	kernelRatios.Lock()
	defer kernelRatios.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| kernel | lang | native ms (fastest) |")
	for _, v := range variants {
		fmt.Fprintf(&sb, " %s |", v)
	}
	fmt.Fprintf(&sb, " auto kept |\n|---|---|---|%s---|\n", strings.Repeat("---|", len(variants)))
	geo := map[string]map[string][]float64{}
	for _, r := range kernelRatios.rows {
		fmt.Fprintf(&sb, "| %s | %s | %.0f |", r.name, r.lang, float64(r.native.Microseconds())/1000)
		for _, v := range variants {
			fmt.Fprintf(&sb, " %.2fx |", r.ratio[v])
			if geo[r.lang] == nil {
				geo[r.lang] = map[string][]float64{}
			}
			if r.ratio[v] > 0 {
				geo[r.lang][v] = append(geo[r.lang][v], r.ratio[v])
			}
		}
		fmt.Fprintf(&sb, " %s |\n", r.chosen)
	}
	langs := make([]string, 0, len(geo))
	for l := range geo {
		langs = append(langs, l)
	}
	slices.Sort(langs)
	for _, l := range langs {
		fmt.Fprintf(&sb, "| geomean | %s | |", l)
		for _, v := range variants {
			fmt.Fprintf(&sb, " %.2fx |", geomean(geo[l][v]))
		}
		sb.WriteString(" |\n")
	}
	b.Log(sb.String())
}

func geomean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += math.Log(x)
	}
	return math.Exp(s / float64(len(xs)))
}

// BenchmarkWasmtimeMemoryModes runs each kernel, and the Go-built spin
// module's long and short tasks, on two in-process wasmtime engines, one
// fixed to guarded code and one to bounds-checked code (memoryMode),
// interleaved, and reports each one's fastest run and their ratio
// (checked/guarded; lower is better for checked). It shows what
// memoryModes weighs: the checks' cost in the module against the time
// they save outside it.
func BenchmarkWasmtimeMemoryModes(b *testing.B) {
	needEngine(b, EngineWasmtime)
	engines := map[memoryMode]Engine{}
	for _, mode := range []memoryMode{modeGuarded, modeChecked} {
		eng, err := NewEngine(context.Background(), EngineWasmtime, EngineConfig{CacheDir: testCacheDir, ModuleDir: testModules})
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close(context.Background())
		eng.(interface{ memoryModes() *memoryModes }).memoryModes().override = &mode
		engines[mode] = eng
	}
	kernels := append(slices.Clone(benchKernels),
		benchKernel{"spin-long", "Go", "testdata/spin", []string{"3000000", "1"}},
		benchKernel{"spin-short", "Go", "testdata/spin", []string{"1000", "1"}})
	for _, k := range kernels {
		b.Run(k.name, func(b *testing.B) {
			req := &Request{ModuleHash: put(b, k.module(b)), Args: k.args}
			fastest := map[memoryMode]time.Duration{}
			for mode, eng := range engines {
				mustRun(b, eng, req) // compile, or load from the disk cache
				fastest[mode] = time.Hour
			}
			for b.Loop() {
				for _, mode := range []memoryMode{modeGuarded, modeChecked} {
					start := time.Now()
					mustRun(b, engines[mode], req)
					fastest[mode] = min(fastest[mode], time.Since(start))
				}
			}
			b.ReportMetric(float64(fastest[modeGuarded].Microseconds())/1000, "guarded-ms")
			b.ReportMetric(float64(fastest[modeChecked].Microseconds())/1000, "checked-ms")
			b.ReportMetric(float64(fastest[modeChecked])/float64(fastest[modeGuarded]), "checked/guarded")
		})
	}
}
