package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNew_WriteYourOwnTask follows the README's "Write your own task" from
// a clean directory to checked results on a dev grid: `peergrid new LANG
// hello`, `job submit hello/job.toml --wait` (which builds the module),
// `job results ID --out results`, and the four results add up to the sum
// of the squares of 1..1000000. Go always; Rust and C where their
// toolchains are installed (skipped, saying what is missing, elsewhere).
func TestNew_WriteYourOwnTask(t *testing.T) {
	c := newCLI(t)
	for _, lang := range []string{"go", "rust", "c"} {
		t.Run(lang, func(t *testing.T) {
			if missing := missingToolchain(lang); missing != "" {
				t.Skipf("no %s toolchain here (%s); the Go case runs everywhere", lang, missing)
			}
			work := t.TempDir()
			task := filepath.Join(work, "hello")
			if code, out, stderr := c.run("new", lang, task); code != exitOK || !strings.Contains(out, "job submit") {
				t.Fatalf("new %s: exit %d: %s %s", lang, code, out, stderr)
			}
			code, out, stderr := c.runFor(3*time.Minute, "job", "submit", filepath.Join(task, "job.toml"), "--wait", "--json")
			if code != exitOK {
				t.Fatalf("job submit --wait: exit %d: %s %s", code, out, stderr)
			}
			var sub struct{ ID, State string }
			if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.State != "complete" {
				t.Fatalf("job submit --wait --json printed %q (%v)", out, err)
			}
			results := filepath.Join(work, "results")
			if code, _, stderr := c.run("job", "results", sub.ID, "--out", results); code != exitOK {
				t.Fatalf("job results: exit %d: %s", code, stderr)
			}
			checkSumOfSquares(t, results, 4, 1000000)
		})
	}
	taken := filepath.Join(t.TempDir(), "x")
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := c.run("new", "go", taken); code != exitError || !strings.Contains(stderr, "already exists") {
		t.Fatalf("new into an existing directory: exit %d, stderr %q", code, stderr)
	}
}

// checkSumOfSquares checks that task i printed "i S_i" and that the S_i
// add up to n(n+1)(2n+1)/6.
func checkSumOfSquares(t *testing.T, dir string, tasks int, n uint64) {
	t.Helper()
	var total uint64
	for i := 0; i < tasks; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.out", i)))
		if err != nil {
			t.Fatal(err)
		}
		var index int
		var sum uint64
		if _, err := fmt.Sscanf(string(b), "%d %d\n", &index, &sum); err != nil || index != i {
			t.Fatalf("task %d printed %q (%v)", i, b, err)
		}
		total += sum
	}
	if want := n * (n + 1) * (2*n + 1) / 6; total != want {
		t.Fatalf("the tasks' sums add up to %d, want %d", total, want)
	}
}

// missingToolchain says what is missing to build a scaffolded task, or "".
func missingToolchain(lang string) string {
	switch lang {
	case "rust":
		if _, err := exec.LookPath("cargo"); err != nil {
			return "cargo is not on PATH"
		}
		out, err := exec.Command("rustc", "--print", "target-libdir", "--target", "wasm32-wasip1").Output()
		if err != nil {
			return "rustc does not know wasm32-wasip1"
		}
		if _, err := os.Stat(strings.TrimSpace(string(out))); err != nil {
			return "the wasm32-wasip1 target is not installed: rustup target add wasm32-wasip1"
		}
	case "c":
		for _, tool := range []string{"clang", "wasm-ld"} {
			if _, err := exec.LookPath(tool); err != nil {
				return tool + " is not on PATH"
			}
		}
		sysroot := os.Getenv("WASI_SYSROOT")
		if sysroot == "" {
			sysroot = "/usr" // Debian's wasi-libc
		}
		if _, err := os.Stat(filepath.Join(sysroot, "include", "wasm32-wasi", "stdio.h")); err != nil {
			if _, err := os.Stat(filepath.Join(sysroot, "include", "stdio.h")); err != nil || sysroot == "/usr" {
				return "no wasi-libc (Debian: apt-get install wasi-libc libclang-rt-14-dev-wasm32; or set WASI_SYSROOT)"
			}
		}
	}
	return ""
}

// TestCLI_SubmitsAnExampleFromItsSource: an example's job file as it is in
// a fresh clone (main.go and job.toml, no .wasm) submits and completes:
// job submit builds the module first (build = "go"), as `peergrid dev`'s
// hint says.
func TestCLI_SubmitsAnExampleFromItsSource(t *testing.T) {
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "pi")
	for _, name := range []string{"main.go", "job.toml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "src", "pi", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(dir, name), b)
	}
	// The build and the grid's first compile of a 2.6 MB Go module took
	// over a minute under -race at load 14: 3 minutes, as a user waits.
	code, out, stderr := c.runFor(3*time.Minute, "job", "submit", filepath.Join(dir, "job.toml"), "--wait")
	if code != exitOK || !strings.Contains(out, "complete: 20 done, 0 failed of 20") {
		t.Fatalf("job submit --wait: exit %d: %s %s", code, out, stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "pi.wasm")); err != nil || st.Size() == 0 {
		t.Fatalf("the build wrote no module: %v", err)
	}
}
