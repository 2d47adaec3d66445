package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/tasks"
)

var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

// stubHash stands for a module hash where no module is built.
var stubHash = strings.Repeat("0", 64)

// jobSpec materializes an example with a stub module (no wasm build) and
// returns its parsed job file and spec, inputs hashed.
func jobSpec(t *testing.T, name string) (*tasks.JobFile, *tasks.JobSpec) {
	t.Helper()
	path, err := materialize(name, t.TempDir(), wasmMagic)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tasks.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := f.HashInputs()
	if err != nil {
		t.Fatal(err)
	}
	return f, f.Spec(stubHash, inputs)
}

// buildNative builds every Go guest for the host, in one go build, and
// returns the directory holding the binaries (named after their directories).
func buildNative(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", dir+string(filepath.Separator), "./src/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./src/...: %v\n%s", err, out)
	}
	return dir
}

// runNative runs every task of a job with the guest built for the host.
func runNative(t *testing.T, bin string, f *tasks.JobFile, spec *tasks.JobSpec) [][]byte {
	t.Helper()
	results := make([][]byte, spec.Tasks)
	for i := range spec.Tasks {
		cmd := exec.Command(bin, spec.TaskArgs(i)...)
		if len(f.InputPaths) > 0 {
			in, err := os.Open(f.InputPaths[i])
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cmd.Stdin = in
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("task %d: %s %q: %v\n%s", i, bin, spec.TaskArgs(i), err, stderr.Bytes())
		}
		results[i] = out
	}
	return results
}

func TestVerify_AcceptsNativeRunsAndRejectsCorruptResults(t *testing.T) {
	bins := buildNative(t)
	wantSummary := map[string]string{
		"primes":     "1270607 primes below 20000000, counted in 50 tasks", // pi(2e7) = 1,270,607
		"mandelbrot": "512x512 image from 16 tiles",
		"wordcount":  "in 5 files; most common: \"the\"",
		"pi":         "pi ≈ 3.14",
		"tiny":       "1000 tasks echoed their arguments",
	}
	for _, ex := range All() {
		t.Run(ex.Name, func(t *testing.T) {
			f, spec := jobSpec(t, ex.Name)
			var results [][]byte
			if ex.Name == "tiny" {
				// C: not built here. Its output is echo's, checked by hand
				// once and by the sandbox's own tests.
				for i := range spec.Tasks {
					results = append(results, fmt.Appendf(nil, "%d\n", i))
				}
			} else {
				results = runNative(t, filepath.Join(bins, ex.Name), f, spec)
			}
			if err := Verify(ex.Name, spec, results); err != nil {
				t.Fatalf("native results rejected: %v", err)
			}
			sum, err := Summary(ex.Name, spec, results)
			if err != nil || !strings.Contains(sum, wantSummary[ex.Name]) {
				t.Errorf("Summary = %q, %v; want it to contain %q", sum, err, wantSummary[ex.Name])
			}

			k := spec.Tasks / 2
			for _, corrupt := range []func([]byte) []byte{
				func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2]++; return c },
				func(b []byte) []byte { return append(bytes.Clone(b), 'x') },
				func(b []byte) []byte { return b[:len(b)-1] },
				func([]byte) []byte { return nil },
			} {
				bad := append([][]byte(nil), results...)
				bad[k] = corrupt(results[k])
				err := Verify(ex.Name, spec, bad)
				if !errors.Is(err, ErrWrongResult) || !strings.Contains(err.Error(), fmt.Sprintf("task %d:", k)) {
					t.Errorf("corrupt task %d: Verify = %v, want ErrWrongResult naming the task", k, err)
				}
			}
			if err := Verify(ex.Name, spec, results[1:]); !errors.Is(err, ErrWrongResult) {
				t.Errorf("missing a result: Verify = %v, want ErrWrongResult", err)
			}
		})
	}
}

func TestVerify_ComputesFromTheSpecsArguments(t *testing.T) {
	_, spec := jobSpec(t, "primes")
	spec.Tasks, spec.Args = 2, []string{"{index}", "{count}", "100"}
	if err := Verify("primes", spec, [][]byte{[]byte("15\n"), []byte("10\n")}); err != nil {
		t.Errorf("primes below 100 in two halves: %v", err)
	}
	spec.Args = []string{"{index}"}
	if err := Verify("primes", spec, [][]byte{[]byte("15\n"), []byte("10\n")}); err == nil || !strings.Contains(err.Error(), "task 0: args") {
		t.Errorf("bad args: Verify = %v, want an error naming task 0's args", err)
	}

	_, spec = jobSpec(t, "pi")
	spec.Tasks, spec.Args = 1, []string{"{index}", "0"}
	if err := Verify("pi", spec, [][]byte{[]byte("0 0\n")}); err != nil {
		t.Errorf("pi with no samples: %v", err)
	}
}

func TestVerify_WordcountWantsTheShippedInputs(t *testing.T) {
	_, spec := jobSpec(t, "wordcount")
	results := make([][]byte, spec.Tasks)
	spec.Inputs[1].Hash = stubHash
	if err := Verify("wordcount", spec, results); err == nil || !strings.Contains(err.Error(), "task 1: input") {
		t.Errorf("changed input: Verify = %v, want an error naming task 1's input", err)
	}
	spec.Inputs[1].Name = "other.txt"
	if err := Verify("wordcount", spec, results); err == nil || !strings.Contains(err.Error(), `no input named "other.txt"`) {
		t.Errorf("unknown input: Verify = %v", err)
	}
}

func TestVerify_UnknownExample(t *testing.T) {
	if err := Verify("nope", &tasks.JobSpec{}, nil); !errors.Is(err, ErrUnknownExample) {
		t.Errorf("Verify = %v, want ErrUnknownExample", err)
	}
	if _, err := Materialize(context.Background(), "nope", t.TempDir(), ""); !errors.Is(err, ErrUnknownExample) {
		t.Errorf("Materialize = %v, want ErrUnknownExample", err)
	}
}

func TestWordcount_CountsLettersAndDigitsLowerCased(t *testing.T) {
	got := string(wordcountOutput("t.txt", []byte("The cat -- the CAT's 2 cats; été ÉTÉ\n")))
	want := "# t.txt: 9 words, 6 distinct\n2 cat\n2 the\n2 été\n1 2\n1 cats\n1 s\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStitchMandelbrot_TilesMakeTheWholeImage(t *testing.T) {
	_, spec := jobSpec(t, "mandelbrot")
	spec.Args = []string{"{index}", "90", "70", "4", "3", "64"} // tiles of uneven sizes
	spec.Tasks = 12
	tiles := make([][]byte, spec.Tasks)
	for i := range tiles {
		m, err := parseMandelbrotArgs(i, spec.TaskArgs(i))
		if err != nil {
			t.Fatal(err)
		}
		tiles[i] = renderTile(m)
	}
	if err := Verify("mandelbrot", spec, tiles); err != nil {
		t.Fatal(err)
	}
	img, err := StitchMandelbrot(spec, tiles)
	if err != nil {
		t.Fatal(err)
	}
	whole := renderTile(mandelbrotArgs{index: 0, width: 90, height: 70, cols: 1, rows: 1, maxIter: 64})
	pix, err := pgmPixels(whole, 90, 70)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, pix) {
		t.Error("stitched tiles differ from the image rendered in one tile")
	}

	tiles[5] = tiles[5][:len(tiles[5])-1]
	if _, err := StitchMandelbrot(spec, tiles); err == nil || !strings.Contains(err.Error(), "tile 5") {
		t.Errorf("short tile: StitchMandelbrot = %v, want an error naming tile 5", err)
	}
	if _, err := StitchMandelbrot(spec, tiles[:3]); err == nil {
		t.Error("3 results for 12 tiles: no error")
	}
}

func TestEstimatePi(t *testing.T) {
	pi, n, err := EstimatePi([][]byte{[]byte("3 4\n"), []byte("3 4\n")})
	if err != nil || pi != 3 || n != 8 {
		t.Errorf("EstimatePi = %v, %d, %v; want 3, 8", pi, n, err)
	}
	if _, _, err := EstimatePi([][]byte{[]byte("5 4\n")}); err == nil || !strings.Contains(err.Error(), "task 0") {
		t.Errorf("more hits than samples: %v", err)
	}
}

// TestJobFiles_GoExamplesBuildWhereTheyAre: each Go example's job file in
// the checkout names its source (build = "go", the job file's directory),
// so `peergrid job submit examples/src/NAME/job.toml` works from a fresh
// clone, with no .wasm committed.
func TestJobFiles_GoExamplesBuildWhereTheyAre(t *testing.T) {
	for _, ex := range registry {
		if !ex.goMain {
			continue
		}
		f, err := tasks.ParseFile(filepath.FromSlash(ex.dir + "/job.toml"))
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if f.Build != tasks.BuildGo || f.SourceDir != filepath.FromSlash(ex.dir) {
			t.Errorf("%s: build %q source %q, want build = \"go\" from its own directory", ex.Name, f.Build, f.SourceDir)
		}
	}
}

func TestMaterialize_WritesJobModuleAndInputsThatParse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Go examples for wasip1")
	}
	ctx := context.Background()
	dir := t.TempDir() // one dir for all: their files must not collide
	wantTasks := map[string]int{"primes": 50, "mandelbrot": 16, "wordcount": 5, "pi": 20, "tiny": 1000}
	for _, ex := range All() {
		path, err := Materialize(ctx, ex.Name, dir, "") // the default cache: each module builds once per machine
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, ex.Name+".toml") {
			t.Errorf("%s: job file %s", ex.Name, path)
		}
		f, err := tasks.ParseFile(path)
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if f.Build != "" {
			t.Errorf("%s: the materialized job file still says build = %q; its module is built already", ex.Name, f.Build)
		}
		if f.Name != ex.Name || f.Tasks != wantTasks[ex.Name] || f.ModulePath != filepath.Join(dir, ex.Name+".wasm") {
			t.Errorf("%s: name %q tasks %d module %s", ex.Name, f.Name, f.Tasks, f.ModulePath)
		}
		onDisk, err := os.ReadFile(f.ModulePath)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := Module(ctx, ex.Name, "")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, mod) || !bytes.HasPrefix(mod, wasmMagic) {
			t.Errorf("%s: module on disk (%d bytes) is not Module's (%d bytes) or not wasm", ex.Name, len(onDisk), len(mod))
		}
		inputs, err := f.HashInputs()
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Spec(stubHash, inputs).Validate(); err != nil {
			t.Errorf("%s: %v", ex.Name, err)
		}
	}
}

func TestAll_EveryExampleHasAJobFileNamingItsModule(t *testing.T) {
	for _, ex := range All() {
		e, err := lookup(ex.Name)
		if err != nil {
			t.Fatal(err)
		}
		job, err := files.ReadFile(e.dir + "/job.toml")
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if m, err := moduleKey(job); err != nil || m != ex.Name+".wasm" {
			t.Errorf("%s: module key %q, %v; want %s.wasm", ex.Name, m, err, ex.Name)
		}
		if ex.Description == "" {
			t.Errorf("%s: no description", ex.Name)
		}
	}
}

func TestTiny_IsTheCommittedSmallWASIModule(t *testing.T) {
	b := Tiny()
	onDisk, err := os.ReadFile(filepath.Join("tiny", "tiny.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, onDisk) || !bytes.HasPrefix(b, wasmMagic) || len(b) > 4<<10 {
		t.Fatalf("Tiny() is %d bytes, want the committed tiny.wasm (%d bytes), a wasm module under 4 KiB", len(b), len(onDisk))
	}
	for _, imp := range []string{"wasi_snapshot_preview1", "args_get", "fd_write", "proc_exit", "_start", "memory"} {
		if !bytes.Contains(b, []byte(imp)) {
			t.Errorf("tiny.wasm does not mention %q", imp)
		}
	}
}

// TestTiny_BuildScriptReproducesTheCommittedModule catches a tiny.c edited
// without rebuilding tiny.wasm. It needs clang and wasm-ld, so it skips
// where they are missing.
func TestTiny_BuildScriptReproducesTheCommittedModule(t *testing.T) {
	for _, tool := range []string{"clang", "wasm-ld", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	out := filepath.Join(t.TempDir(), "tiny.wasm")
	if b, err := exec.Command("sh", filepath.Join("tiny", "build.sh"), out).CombinedOutput(); err != nil {
		t.Skipf("build.sh: %v\n%s", err, b) // e.g. a clang without the wasm32 target
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, Tiny()) {
		t.Errorf("build.sh makes %d bytes that differ from the committed tiny.wasm (%d bytes): rebuild it (or a different clang made it)", len(built), len(Tiny()))
	}
}

// The mandelbrot job says it makes an image, so the dashboard stitches its
// tiles: 4x4, one per task, as its args lay them out.
func TestMandelbrot_JobSaysItMakesAnImage(t *testing.T) {
	_, spec := jobSpec(t, "mandelbrot")
	if spec.Image == nil || *spec.Image != (tasks.ImageTiles{Cols: 4, Rows: 4}) {
		t.Fatalf("mandelbrot's image = %+v, want 4x4 tiles", spec.Image)
	}
	m, err := parseMandelbrotArgs(0, spec.TaskArgs(0))
	if err != nil {
		t.Fatal(err)
	}
	if m.cols != spec.Image.Cols || m.rows != spec.Image.Rows {
		t.Errorf("args lay out %dx%d tiles, the image key says %dx%d", m.cols, m.rows, spec.Image.Cols, spec.Image.Rows)
	}
}
