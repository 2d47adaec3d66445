package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI_BlobGetNeverTouchesAFileUnlessTheFetchSucceeded: `blob get` with
// a hash the grid does not have leaves an existing -o file as it was (it
// used to truncate it to zero bytes) and leaves no temporary file; with a
// good hash it replaces the file whole, mode 0644.
func TestCLI_BlobGetNeverTouchesAFileUnlessTheFetchSucceeded(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	precious := filepath.Join(dir, "precious.bin")
	mustWrite(t, precious, []byte("years of work"))
	wrong := strings.Repeat("ab", 32)
	code, _, stderr := c.run("blob", "get", wrong, "-o", precious)
	if code != exitError {
		t.Fatalf("blob get of an unknown hash: exit %d, stderr %q", code, stderr)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "years of work" {
		t.Fatalf("after a failed blob get the file holds %q (%v)", b, err)
	}
	wantOnly(t, dir, "precious.bin")

	src := filepath.Join(dir, "src.txt")
	mustWrite(t, src, []byte("new bytes\n"))
	code, out, stderr := c.run("blob", "put", src)
	if code != exitOK {
		t.Fatalf("blob put: exit %d %s", code, stderr)
	}
	if code, _, stderr := c.run("blob", "get", strings.TrimSpace(out), "-o", precious); code != exitOK {
		t.Fatalf("blob get: exit %d %s", code, stderr)
	}
	st, err := os.Stat(precious)
	if b, _ := os.ReadFile(precious); err != nil || string(b) != "new bytes\n" || st.Mode().Perm() != 0o644 {
		t.Fatalf("after blob get: %q, mode %v (%v)", b, st.Mode(), err)
	}
	wantOnly(t, dir, "precious.bin", "src.txt")
}

// TestCLI_JobResultsCreatesNothingUnlessTheFetchSucceeded: `job results`
// for a job that does not exist creates no --out directory and touches no
// file in one that exists.
func TestCLI_JobResultsCreatesNothingUnlessTheFetchSucceeded(t *testing.T) {
	c := newCLI(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "d")
	code, _, stderr := c.run("job", "results", "j-000000000000", "--out", out)
	if code != exitError {
		t.Fatalf("job results of a missing job: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("job results of a missing job created %s (%v)", out, err)
	}
	existing := filepath.Join(parent, "kept")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(existing, "0.out"), []byte("an older result"))
	if code, _, _ := c.run("job", "results", "j-000000000000", "--out", existing); code != exitError {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(existing, "0.out")); string(b) != "an older result" {
		t.Fatalf("0.out now holds %q", b)
	}
	wantOnly(t, existing, "0.out")
}

// wantOnly fails unless dir holds exactly the named entries.
func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// TestCLI_HelpUnknownAndVersion: `job -h` and `blob -h` print usage and
// exit 0 like `job help`; a misspelt subcommand is named unknown with the
// nearest one suggested; `version` prints the version.
func TestCLI_HelpUnknownAndVersion(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		return m.Run(context.Background(), args), out.String(), errb.String()
	}
	for _, args := range [][]string{{"job", "-h"}, {"job", "--help"}, {"job", "help"}, {"blob", "-h"}, {"blob", "help"}} {
		if code, _, stderr := run(args...); code != exitOK || !strings.Contains(stderr, "Usage: peergrid "+args[0]) {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	code, _, stderr := run("job", "sumbit", "job.toml")
	if code != exitError || !strings.HasPrefix(stderr, `peergrid: unknown command "job sumbit" (did you mean "job submit"?)`) {
		t.Errorf("job sumbit: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run("blbo")
	if code != exitError || !strings.HasPrefix(stderr, `peergrid: unknown command "blbo" (did you mean "blob"?)`) {
		t.Errorf("blbo: exit %d, stderr %q", code, stderr)
	}
	code, out, _ := run("version")
	if code != exitOK || !strings.HasPrefix(out, "peergrid ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}
