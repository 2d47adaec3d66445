package wasm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// TestSandbox_StdoutSpillsToAFile: past StdoutSpill bytes, stdout goes to
// the file as it is written (all of it, from the first byte) and not to
// memory; under it, nothing is spilled and no file is made. The cap holds
// in the file too. Every engine, in-process and through executors.
func TestSandbox_StdoutSpillsToAFile(t *testing.T) {
	cat, flood := put(t, wasmtest.Cat()), put(t, wasmtest.OutputFlood(1))
	input := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	eachRunner(t, func(t *testing.T, r runner) {
		dir := t.TempDir()
		small := filepath.Join(dir, "small")
		res, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: []byte("short"), StdoutPath: small, StdoutSpill: 1 << 10})
		if err != nil || string(res.Stdout) != "short" || res.StdoutSpilled || res.StdoutSize != 5 {
			t.Fatalf("under the spill: %q spilled %v size %d, %v", stdout(res), res.StdoutSpilled, res.StdoutSize, err)
		}
		if _, err := os.Stat(small); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a file was made for output under the spill: %v", err)
		}

		big := filepath.Join(dir, "big")
		res, err = r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: input, StdoutPath: big, StdoutSpill: 1 << 10})
		if err != nil || len(res.Stdout) != 0 || !res.StdoutSpilled || res.StdoutSize != int64(len(input)) {
			t.Fatalf("over the spill: %d bytes in memory, spilled %v, size %d, %v", len(res.Stdout), res.StdoutSpilled, res.StdoutSize, err)
		}
		if got, _ := os.ReadFile(big); !bytes.Equal(got, input) {
			t.Fatalf("the spill file holds %d bytes, not the %d written", len(got), len(input))
		}

		capped := filepath.Join(dir, "capped")
		res, err = r.run(testCtx(t), &Request{ModuleHash: flood, StdoutPath: capped, Limits: Limits{MaxOutput: 100_000}})
		wantKind(t, err, KindOutput)
		if fi, _ := os.Stat(capped); res == nil || !res.StdoutSpilled || res.StdoutSize != 100_000 || fi == nil || fi.Size() != 100_000 {
			t.Fatalf("a flood over the cap: result %+v, file %v", res, fi)
		}
	})
}

// TestSandbox_UnwritableStdoutFileIsNotTheTasksFault: a spill file that
// cannot be made fails the run with ErrStdoutFile, not a task kind.
func TestSandbox_UnwritableStdoutFileIsNotTheTasksFault(t *testing.T) {
	cat := put(t, wasmtest.Cat())
	eachRunner(t, func(t *testing.T, r runner) {
		path := filepath.Join(t.TempDir(), "no such dir", "out")
		_, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: []byte("x"), StdoutPath: path})
		if !errors.Is(err, ErrStdoutFile) || KindOf(err) != "" || !strings.Contains(err.Error(), "no such dir") {
			t.Fatalf("err = %v, want ErrStdoutFile and no task kind", err)
		}
	})
}
