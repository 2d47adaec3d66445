//go:build cgo && (linux || darwin) && (amd64 || arm64)

package wasm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/peergrid/peergrid/internal/wasmtest"
)

// runReferenceWASI runs a module on wasmtime with wasmtime's own WASI
// preview 1 (the reference implementation), with no preopens and stdin,
// stdout and stderr as files, and returns its stdout.
func runReferenceWASI(t *testing.T, module []byte, stdin string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "stdin"), filepath.Join(dir, "stdout")
	if err := os.WriteFile(in, []byte(stdin), 0o644); err != nil {
		t.Fatal(err)
	}
	engine := wasmtime.NewEngine()
	store := wasmtime.NewStore(engine)
	cfg := wasmtime.NewWasiConfig()
	cfg.SetArgv([]string{"task"})
	if err := cfg.SetStdinFile(in); err != nil {
		t.Fatal(err)
	}
	if err := cfg.SetStdoutFile(out); err != nil {
		t.Fatal(err)
	}
	store.SetWasi(cfg)
	linker := wasmtime.NewLinker(engine)
	if err := linker.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	mod, err := wasmtime.NewModule(engine, module)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inst.GetFunc(store, "_start").Call(store); err != nil {
		t.Fatalf("reference: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The table in wasi_test.go is the reference's: every probe gives the
// reference's errnos, and the memory it leaves behind is byte for byte
// ours (except where real time decides: which clocks are due).
func TestWASI_ReferenceAnswers(t *testing.T) {
	eng := sharedEngineNamed(t, EngineWazero)
	for _, p := range wasiProbes {
		t.Run(p.name, func(t *testing.T) {
			module := wasmtest.WASIProbe(p.data, p.calls)
			errnos, refDump := decodeProbe(t, p, runReferenceWASI(t, module, probeStdin))
			// The reference answers a poll on streams as soon as any is
			// ready, and it checks stdin (a file) on another thread: on a
			// loaded machine stdout and stderr can be reported before stdin
			// is. Ours reports every stream ready at once, as the reference
			// does when its check has finished, so ask it again until it has.
			for try := 0; p.name == "poll stdio and a clock" && eventCount(refDump) < 3 && try < 50; try++ {
				errnos, refDump = decodeProbe(t, p, runReferenceWASI(t, module, probeStdin))
			}
			if fmt.Sprint(errnos) != fmt.Sprint(p.errnos) {
				t.Errorf("reference errnos %v\nthe table says   %v\n(calls %v)", errnos, p.errnos, p.calls)
			}
			if p.name == "poll clocks" {
				return // real clocks: which of the equal deadlines are due varies
			}
			res, err := eng.Run(testCtx(t), &Request{ModuleHash: put(t, module), Stdin: []byte(probeStdin)})
			if err != nil {
				t.Fatal(err)
			}
			if _, dump := decodeProbe(t, p, res.Stdout); !bytes.Equal(dump, refDump) {
				t.Errorf("memory after the calls differs from the reference:\nours %x\nref  %x", trimZeros(dump), trimZeros(refDump))
			}
		})
	}
	// An argument the reference cannot decode (a clock id that is no clock)
	// traps there, and here on every engine.
	bad := wasmtest.WASIProbe(probeData(), []wasmtest.ProbeCall{pc("clock_time_get", 9, 1, probeOut)})
	hash := put(t, bad)
	for _, r := range runners(t) {
		_, err := r.run(testCtx(t), &Request{ModuleHash: hash})
		if KindOf(err) != KindTrap {
			t.Errorf("%s: clock id 9: err = %v, want a trap as the reference's", r.name, err)
		}
	}
}

func trimZeros(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

// eventCount is how many events poll_oneoff wrote, in a probe's dump.
func eventCount(dump []byte) uint32 { return binary.LittleEndian.Uint32(dump[probeEvents-probeOut-8:]) }
