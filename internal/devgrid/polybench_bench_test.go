//go:build linux || darwin

package devgrid

// PolyBench-style C kernels through the grid against native builds of the
// same sources (issue 15): one-task jobs, engine = "auto" (the default),
// timed from submit to the job complete, beside the native binary in the
// same run.
//
//	go test -run '^$' -bench PolyBench -benchtime 3x -v ./internal/devgrid/
//
// It needs clang and wasi-libc (Debian 12:
// apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32) and
// skips, saying so, without them. PEERGRID_POLYBENCH_ENGINES=auto,wazero
// adds other engines as more columns (each a job with that engine).

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

var polybenchKernels = []string{"gemm", "2mm", "syrk", "jacobi2d", "seidel2d", "heat3d", "floyd", "lcs"}

// buildPolyBench builds every kernel natively and for wasm32-wasi with
// clang -O3 into dir, or returns why it cannot.
func buildPolyBench(dir string) (string, error) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		return "no clang on PATH", err
	}
	for _, k := range polybenchKernels {
		src := filepath.Join("testdata", "polybench", k+".c")
		native := exec.Command(clang, "-O3", "-o", filepath.Join(dir, k), src)
		wasm := exec.Command(clang, "--target=wasm32-wasi", "--sysroot=/usr", "-O3", "-msimd128",
			"-Wl,-z,stack-size=1048576", "-Wl,--strip-all", "-o", filepath.Join(dir, k+".wasm"), src)
		for _, cmd := range []*exec.Cmd{native, wasm} {
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Sprintf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out), err
			}
		}
	}
	return "", nil
}

func BenchmarkPolyBench_ThroughGrid(b *testing.B) {
	dir := b.TempDir()
	if why, err := buildPolyBench(dir); err != nil {
		b.Skipf("cannot build the C kernels (%s); install: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32", why)
	}
	engines := []string{tasks.EngineAuto}
	if v := os.Getenv("PEERGRID_POLYBENCH_ENGINES"); v != "" {
		engines = strings.Split(v, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	g, err := Start(ctx, Config{DataDir: filepath.Join(dir, "grid"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	cl := g.Client()
	var table strings.Builder
	fmt.Fprintf(&table, "\n| kernel | native s (fastest) | first job, x native |")
	for _, e := range engines {
		fmt.Fprintf(&table, " %s, x native |", e)
	}
	fmt.Fprintf(&table, " ran on |\n|---|---|---|%s---|\n", strings.Repeat("---|", len(engines)))
	ratios := map[string][]float64{}
	b.ResetTimer()
	for _, k := range polybenchKernels {
		want, native := runNative(b, filepath.Join(dir, k))
		module, err := os.ReadFile(filepath.Join(dir, k+".wasm"))
		if err != nil {
			b.Fatal(err)
		}
		hash := storage.Hash(module)
		if err := cl.PutBlob(ctx, hash, module); err != nil {
			b.Fatal(err)
		}
		// The first job of a module pays for its compile on the worker.
		first, _ := runGridJob(b, ctx, cl, hash, k, tasks.EngineAuto, 0, want)
		best := map[string]time.Duration{}
		ran := ""
		for i := range b.N {
			_, d := runNative(b, filepath.Join(dir, k))
			native = min(native, d)
			for _, e := range engines {
				d, engine := runGridJob(b, ctx, cl, hash, k, e, i+1, want)
				if old, ok := best[e]; !ok || d < old {
					best[e] = d
				}
				if e == tasks.EngineAuto {
					ran = engine
				}
			}
		}
		fmt.Fprintf(&table, "| %s | %.2f | %.2fx |", k, native.Seconds(), first.Seconds()/native.Seconds())
		for _, e := range engines {
			r := best[e].Seconds() / native.Seconds()
			ratios[e] = append(ratios[e], r)
			fmt.Fprintf(&table, " %.2fx |", r)
		}
		fmt.Fprintf(&table, " %s |\n", ran)
		ratios["first"] = append(ratios["first"], first.Seconds()/native.Seconds())
	}
	b.StopTimer()
	fmt.Fprintf(&table, "| **geomean** | | %.2fx |", geomean(ratios["first"]))
	for _, e := range engines {
		g := geomean(ratios[e])
		fmt.Fprintf(&table, " **%.2fx** |", g)
		b.ReportMetric(g, e+"-x-native")
	}
	table.WriteString(" |\n")
	b.ReportMetric(geomean(ratios["first"]), "first-job-x-native")
	b.ReportMetric(0, "ns/op")
	b.Log(table.String())
}

// runNative runs a native kernel and returns its output and wall time.
func runNative(b *testing.B, bin string) ([]byte, time.Duration) {
	start := time.Now()
	out, err := exec.Command(bin).Output()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v", bin, err)
	}
	return out, d
}

// runGridJob submits a one-task job of the kernel and waits for it:
// submit to complete. run makes each job's content distinct (an env
// variable), so no result is served from an earlier one.
func runGridJob(b *testing.B, ctx context.Context, cl *client.Client, hash, name, engine string, run int, want []byte) (time.Duration, string) {
	start := time.Now()
	id, err := cl.Submit(ctx, &tasks.JobSpec{Name: name, ModuleHash: hash, Tasks: 1, Engine: engine,
		Env: map[string]string{"RUN": fmt.Sprint(run)}, Timeout: 5 * time.Minute, Memory: 512 << 20, MaxOutput: 1 << 10, Retries: 0})
	if err != nil {
		b.Fatal(err)
	}
	sum, err := cl.WaitJob(ctx, id, 2*time.Millisecond, nil)
	d := time.Since(start)
	if err != nil || sum.State != tasks.JobComplete {
		b.Fatalf("%s on %s: %+v %v", name, engine, sum, err)
	}
	res, err := cl.Results(ctx, id)
	if err != nil || len(res) != 1 || !bytes.Equal(res[0].Stdout, want) {
		b.Fatalf("%s on %s: results %+v %v, want %q", name, engine, res, err, want)
	}
	return d, res[0].Engine
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
