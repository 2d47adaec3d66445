package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/tasks"
)

// TestCLI_ResultsWritesCodedResultsStraightToFiles: `job results --out`
// writes every task's stdout, reading the erasure-coded ones from the
// storage peers into their files (no partial file is left), and the inline
// ones from the ledger; every file holds exactly what the task wrote.
func TestCLI_ResultsWritesCodedResultsStraightToFiles(t *testing.T) {
	g, err := devgrid.Start(context.Background(), devgrid.Config{DataDir: t.TempDir(), Cores: 1, StoragePeers: 5,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "cat.wasm"), wasmtest.Cat())
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	sizes := []int{10, 100 << 10, 5 << 20, 0, 16 << 10, 16<<10 + 1} // inline and coded, one of two segments
	var inputs [][]byte
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte('a' + i), byte(i)}, n/2+1)[:n]
		inputs = append(inputs, data)
		mustWrite(t, filepath.Join(dir, "in", fmt.Sprintf("%02d.bin", i)), data)
	}
	mustWrite(t, filepath.Join(dir, "job.toml"), []byte("name = \"cat\"\nmodule = \"cat.wasm\"\ninputs = \"in/*.bin\"\nmax_output = \"8MiB\"\nmemory = \"32MiB\"\n"))
	jf, err := tasks.ParseFile(filepath.Join(dir, "job.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := c.SubmitJobFile(ctx, jf)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job: %+v %v", sum, err)
	}

	out := filepath.Join(t.TempDir(), "results")
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
		return map[string]string{"PEERGRID_ADDR": g.Addr, "PEERGRID_TOKEN": g.Token, "PEERGRID_CA_FINGERPRINT": g.CAFingerprint}[k]
	}}
	if code := m.Run(ctx, []string{"job", "results", id, "--out", out}); code != exitOK {
		t.Fatalf("job results: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("wrote %d results", len(sizes))) {
		t.Fatalf("job results said %q", stdout.String())
	}
	for i, want := range inputs {
		got, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.out", i)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("task %d: %d bytes in its .out file (%v), want the %d bytes of its input", i, len(got), err, len(want))
		}
		for _, ext := range []string{".out", ".err"} { // coded and inline alike
			if st, err := os.Stat(filepath.Join(out, fmt.Sprintf("%d%s", i, ext))); err != nil || st.Mode().Perm() != 0o644 {
				t.Fatalf("task %d's %s file: mode %v (%v), want 0644", i, ext, st.Mode(), err)
			}
		}
	}
	coded := 0
	err = c.EachResultPage(ctx, id, func(page []api.TaskResult) error {
		for _, r := range page {
			if r.StdoutBlob != "" {
				coded++
			}
		}
		return nil
	})
	if err != nil || coded < 3 {
		t.Fatalf("%d results erasure-coded (%v): the test must cover coded results", coded, err)
	}
	if parts, _ := filepath.Glob(filepath.Join(out, "*.part")); len(parts) != 0 {
		t.Fatalf("partial files left: %v", parts)
	}

	// Into a dir that holds files already: results replace theirs, the
	// others stay, and no staging dir is left beside it.
	mustWrite(t, filepath.Join(out, "0.out"), []byte("stale"))
	mustWrite(t, filepath.Join(out, "notes.txt"), []byte("mine"))
	if code := m.Run(ctx, []string{"job", "results", id, "--out", out}); code != exitOK {
		t.Fatalf("job results into an existing dir: exit %d: %s", code, stderr.String())
	}
	if b, _ := os.ReadFile(filepath.Join(out, "0.out")); !bytes.Equal(b, inputs[0]) {
		t.Fatalf("0.out not replaced: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "notes.txt")); string(b) != "mine" {
		t.Fatalf("an unrelated file changed: %q", b)
	}
	wantOnly(t, filepath.Dir(out), "results")

	// A download that fails part way (the coded results cannot be read
	// once three of the six storage peers are gone) changes nothing: no new
	// dir, and an existing one as it was.
	for _, p := range g.Storage[:3] {
		p.Stop()
	}
	mustWrite(t, filepath.Join(out, "0.out"), []byte("kept"))
	fresh := filepath.Join(filepath.Dir(out), "fresh")
	for _, dir := range []string{out, fresh} {
		stderr.Reset()
		if code := m.Run(ctx, []string{"job", "results", id, "--out", dir}); code != exitError {
			t.Fatalf("job results with the coded results unreadable: exit %d, want %d: %s", code, exitError, stderr.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "0.out")); string(b) != "kept" {
		t.Fatalf("a failed download changed 0.out: %q", b)
	}
	wantOnly(t, filepath.Dir(out), "results")
}
