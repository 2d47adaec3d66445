package wasmtest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

type run struct {
	stdout, stderr string
	exitCode       uint32
	err            error
}

// runModule runs a module under plain wazero with the given args, env and
// stdin, so these tests check the encoder, not the sandbox.
func runModule(t *testing.T, wasm []byte, stdin string, args []string, env ...string) run {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var out, errOut bytes.Buffer
	cfg := wazero.NewModuleConfig().WithArgs(append([]string{"task"}, args...)...).
		WithStdin(strings.NewReader(stdin)).WithStdout(&out).WithStderr(&errOut)
	for i := 0; i+1 < len(env); i += 2 {
		cfg = cfg.WithEnv(env[i], env[i+1])
	}
	_, err := r.InstantiateWithConfig(ctx, wasm, cfg)
	res := run{stdout: out.String(), stderr: errOut.String(), err: err}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		res.exitCode, res.err = exit.ExitCode(), nil
	}
	return res
}

func TestHello_WritesExactStdoutAndStderr(t *testing.T) {
	got := runModule(t, wasmtest.Hello("out\n", "err\n", 0), "", nil)
	if got.err != nil || got.stdout != "out\n" || got.stderr != "err\n" || got.exitCode != 0 {
		t.Fatalf("got %+v", got)
	}
	got = runModule(t, wasmtest.Hello("a", "", 5), "", nil)
	if got.stdout != "a" || got.exitCode != 5 {
		t.Fatalf("got %+v", got)
	}
}

func TestExit_ReturnsCode(t *testing.T) {
	if got := runModule(t, wasmtest.Exit(3), "", nil); got.exitCode != 3 {
		t.Fatalf("got %+v", got)
	}
}

func TestTrap_Traps(t *testing.T) {
	got := runModule(t, wasmtest.Trap(), "", nil)
	if got.err == nil || !strings.Contains(got.err.Error(), "unreachable") {
		t.Fatalf("got %+v", got)
	}
}

func TestEchoArgs_JoinsArgsWithSpaces(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "\n"},
		{[]string{"one"}, "one\n"},
		{[]string{"a", "b c", ""}, "a b c \n"},
	} {
		if got := runModule(t, wasmtest.EchoArgs(), "", tc.args); got.stdout != tc.want || got.err != nil {
			t.Errorf("args %q: got %+v, want stdout %q", tc.args, got, tc.want)
		}
	}
}

func TestEchoEnv_WritesOneEntryPerLine(t *testing.T) {
	got := runModule(t, wasmtest.EchoEnv(), "", nil, "A", "1", "B", "x=y")
	if got.stdout != "A=1\nB=x=y\n" || got.err != nil {
		t.Fatalf("got %+v", got)
	}
}

func TestCat_CopiesStdin(t *testing.T) {
	in := strings.Repeat("0123456789", 10000) // several reads of the 32 KiB buffer
	if got := runModule(t, wasmtest.Cat(), in, nil); got.stdout != in || got.err != nil {
		t.Fatalf("got %d bytes, err %v", len(got.stdout), got.err)
	}
}

func TestClockRandom_Writes32Bytes(t *testing.T) {
	got := runModule(t, wasmtest.ClockRandom(), "", nil)
	if len(got.stdout) != 32 || got.err != nil {
		t.Fatalf("got %+v", got)
	}
	if wall := binary.LittleEndian.Uint64([]byte(got.stdout)); wall == 0 {
		t.Fatal("realtime clock is zero")
	}
}

func TestMemoryBomb_TrapsWhenGrowFails(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(64))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	_, err := r.Instantiate(ctx, wasmtest.MemoryBomb())
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v", err)
	}
}

func TestAllModules_Compile(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for name, m := range map[string][]byte{
		"loop": wasmtest.LoopForever(), "flood": wasmtest.OutputFlood(1),
		"huge":          wasmtest.HugeInitialMemory(100),
		"out of bounds": wasmtest.OutOfBounds(), "divide by zero": wasmtest.DivideByZero(),
	} {
		if _, err := r.CompileModule(ctx, m); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := r.CompileModule(ctx, wasmtest.GarbageAfterMagic()); err == nil {
		t.Error("garbage after magic compiled")
	}
}

func TestFaults_Trap(t *testing.T) {
	for name, m := range map[string][]byte{"out of bounds": wasmtest.OutOfBounds(), "divide by zero": wasmtest.DivideByZero()} {
		if got := runModule(t, m, "", nil); got.err == nil {
			t.Errorf("%s: ran to the end, want a trap", name)
		}
	}
}

func TestGrowMemory_SucceedsWithinMaximum(t *testing.T) {
	if got := runModule(t, wasmtest.GrowMemory(3), "", nil); got.err != nil || got.stdout != "ok" {
		t.Fatalf("got %+v", got)
	}
}

func TestWriteThenLoop_Compiles(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, m := range [][]byte{wasmtest.WriteThenLoop("a", "b"), wasmtest.NoStart(), wasmtest.ImportsUnknown()} {
		if _, err := r.CompileModule(ctx, m); err != nil {
			t.Error(err)
		}
	}
}

func TestCountStdin_WritesTheLengthOfStdin(t *testing.T) {
	for _, n := range []int{0, 1, 32 << 10, 100<<10 + 3} {
		got := runModule(t, wasmtest.CountStdin(), strings.Repeat("x", n), nil)
		if got.err != nil || len(got.stdout) != 4 || binary.LittleEndian.Uint32([]byte(got.stdout)) != uint32(n) {
			t.Fatalf("%d bytes in: got %+v", n, got)
		}
	}
}

// Residue must tell a fresh memory from one with a byte left anywhere:
// below, in and above its data segment, and in the memory it grows.
func TestResidue_PrintsDirtyForAnyByteLeftBehind(t *testing.T) {
	const grow = 3
	if got := runModule(t, wasmtest.Residue(grow), "", nil); got.err != nil || got.stdout != "clean\n" {
		t.Fatalf("fresh memory: got %+v", got)
	}
	end := uint32(wasmtest.MemoryPages+grow) << 16
	for _, at := range []uint32{0, 1023, 1024, 1035, 1036, 65535, end - 1} {
		if got := runResidueWith(t, grow, at); got == "clean\n" || got == "" { // "dirty\n", or its text changed
			t.Errorf("byte left at %d: got %q, want not clean", at, got)
		}
	}
}

// runResidueWith runs Residue(grow) with memory already grown and one byte
// at addr changed, as a reused memory that was not reset would be.
func runResidueWith(t *testing.T, grow, addr uint32) string {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var out bytes.Buffer
	mod, err := r.InstantiateWithConfig(ctx, wasmtest.Residue(0), wazero.NewModuleConfig().WithStdout(&out).WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	if _, ok := mem.Grow(grow); !ok {
		t.Fatal("grow failed")
	}
	b, _ := mem.ReadByte(addr)
	mem.WriteByte(addr, b^0x5a)
	if _, err := mod.ExportedFunction("_start").Call(ctx); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TableResidue prints clean on its own table and dirty on the table a
// first run left: _start called twice in one instance.
func TestTableResidue_PrintsDirtyOnTheTableARunLeft(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var out bytes.Buffer
	mod, err := r.InstantiateWithConfig(ctx, wasmtest.TableResidue(), wazero.NewModuleConfig().WithStdout(&out).WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"clean\n", "clean\ndirty\n"} {
		if _, err := mod.ExportedFunction("_start").Call(ctx); err != nil || out.String() != want {
			t.Fatalf("got %q, %v; want %q", out.String(), err, want)
		}
	}
}

// ReadPastMemory's loads past its memory's end trap, after it grew and
// with no growth at all.
func TestReadPastMemory_TrapsPastTheEnd(t *testing.T) {
	mod := wasmtest.ReadPastMemory(8)
	if got := runModule(t, mod, "", []string{"grow"}); got.err == nil || got.stdout != "grew\n" {
		t.Fatalf("grown: got %+v, want a trap after %q", got, "grew\n")
	}
	if got := runModule(t, mod, "", nil); got.err == nil || got.stdout != "" {
		t.Fatalf("not grown: got %+v, want a trap and no output", got)
	}
}
