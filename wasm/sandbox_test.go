package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// The sandbox contract, checked in-process and through executors alike.

func TestSandbox_HelloGivesExactStdoutStderrAndExitCode(t *testing.T) {
	ok := put(t, wasmtest.Hello("hello, world\n", "a log line\n", 0))
	failing := put(t, wasmtest.Hello("partial", "why\n", 7))
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: ok})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "hello, world\n" || string(res.Stderr) != "a log line\n" || res.ExitCode != 0 {
			t.Fatalf("got stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
		}
		res, err = r.run(testCtx(t), &Request{ModuleHash: failing})
		wantKind(t, err, KindExit)
		if res == nil || res.ExitCode != 7 || string(res.Stdout) != "partial" || string(res.Stderr) != "why\n" {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestSandbox_StdinPassesThrough(t *testing.T) {
	cat := put(t, wasmtest.Cat())
	in := make([]byte, 300<<10)
	rand.Read(in)
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: in})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Stdout, in) {
			t.Fatalf("stdout is %d bytes, differs from the %d bytes of stdin", len(res.Stdout), len(in))
		}
	})
}

func TestSandbox_ArgsAndEnvPassThrough(t *testing.T) {
	echo, env := put(t, wasmtest.EchoArgs()), put(t, wasmtest.EchoEnv())
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: echo, Args: []string{"one", "two words", "ünï"}})
		if err != nil || string(res.Stdout) != "one two words ünï\n" {
			t.Fatalf("args: got %q, %v", stdout(res), err)
		}
		res, err = r.run(testCtx(t), &Request{ModuleHash: env, Env: map[string]string{"Z": "last", "A": "first", "M": "x=y"}})
		if err != nil || string(res.Stdout) != "A=first\nM=x=y\nZ=last\n" {
			t.Fatalf("env: got %q, %v", stdout(res), err)
		}
	})
}

func stdout(res *Result) string {
	if res == nil {
		return "<no result>"
	}
	return string(res.Stdout)
}

func TestSandbox_TrapIsKindTrap(t *testing.T) {
	trap := put(t, wasmtest.Trap())
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: trap})
		wantKind(t, err, KindTrap)
		if res == nil || res.ExitCode != -1 || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
}

// Faults in compiled code (a bad memory access, an integer division by
// zero) are traps of the task, not crashes of the process.
func TestSandbox_FaultsAreKindTrap(t *testing.T) {
	oob, div := put(t, wasmtest.OutOfBounds()), put(t, wasmtest.DivideByZero())
	eachRunner(t, func(t *testing.T, r runner) {
		for _, mod := range []string{oob, div, oob} {
			res, err := r.run(testCtx(t), &Request{ModuleHash: mod})
			wantKind(t, err, KindTrap)
			if res == nil || res.ExitCode != -1 {
				t.Fatalf("got %+v, %v", res, err)
			}
		}
	})
}

func TestSandbox_NonZeroExitIsKindExitWithCode(t *testing.T) {
	exit3 := put(t, wasmtest.Exit(3))
	exit0 := put(t, wasmtest.Exit(0))
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: exit3})
		wantKind(t, err, KindExit)
		if res == nil || res.ExitCode != 3 || err.Error() != "exit: task exited with code 3" {
			t.Fatalf("got %+v, %v", res, err)
		}
		if res, err := r.run(testCtx(t), &Request{ModuleHash: exit0}); err != nil || res.ExitCode != 0 {
			t.Fatalf("proc_exit(0): got %+v, %v", res, err)
		}
	})
}

func TestSandbox_MemoryBombIsKindMemory(t *testing.T) {
	bomb := put(t, wasmtest.MemoryBomb())
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: bomb, Limits: Limits{MemoryBytes: 8 << 20}})
		wantKind(t, err, KindMemory)
		if res == nil || !strings.Contains(err.Error(), "more than its 8 MiB memory limit") {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
}

// The cap is exact and enforced by the allocator, not by wazero's page
// limit: a module may grow to exactly the limit, and not one page beyond.
func TestSandbox_MemoryLimitIsExact(t *testing.T) {
	const grow = 30
	mod := put(t, wasmtest.GrowMemory(grow))
	exact := uint64(wasmtest.MemoryPages+grow) * wasmPageSize
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: mod, Limits: Limits{MemoryBytes: exact}})
		if err != nil || string(res.Stdout) != "ok" {
			t.Fatalf("at the limit: got %q, %v", stdout(res), err)
		}
		_, err = r.run(testCtx(t), &Request{ModuleHash: mod, Limits: Limits{MemoryBytes: exact - wasmPageSize}})
		wantKind(t, err, KindMemory)
	})
}

// A task starts from its module's memory and nothing else, whatever ran
// before it in the same executor or engine: wasmtime's pooling allocator
// reuses a memory slot, zeroing the part it keeps resident (4 MiB) and
// releasing the rest, and wazero reuses mmap regions. Residue grows past
// the resident part, checks every byte, then fills its memory with 0xff.
func TestSandbox_TaskSeesNothingOfThePreviousTask(t *testing.T) {
	const grow = 94 // 6 MiB in all
	mod := put(t, wasmtest.Residue(grow))
	eachRunner(t, func(t *testing.T, r runner) {
		for i := range 4 { // a pool of 2 runs one of its executors at least twice
			res, err := r.run(testCtx(t), &Request{ModuleHash: mod})
			if err != nil || string(res.Stdout) != "clean\n" {
				t.Fatalf("run %d: got %q, %v", i, stdout(res), err)
			}
		}
	})
}

// Memory past memory.size is out of reach on every engine and memory
// mode: just past the end of memory a task grew, and where an earlier task
// of the same module (in the same executor, most likely the same slot)
// grew memory that this one has not. Bounds-checked wasmtime code keeps
// such pages mapped between tasks; its checks must still trap.
func TestSandbox_ReadPastMemorySizeTraps(t *testing.T) {
	const grow = 16 // 1 MiB
	mod := put(t, wasmtest.ReadPastMemory(grow))
	eachRunner(t, func(t *testing.T, r runner) {
		for i := range 3 { // a pool of 2 runs one of its executors at least twice
			res, err := r.run(testCtx(t), &Request{ModuleHash: mod, Args: []string{"grow"}})
			wantKind(t, err, KindTrap)
			if res == nil || string(res.Stdout) != "grew\n" {
				t.Fatalf("run %d, grown: got %q, %v; want a trap after %q", i, stdout(res), err, "grew\n")
			}
			res, err = r.run(testCtx(t), &Request{ModuleHash: mod})
			wantKind(t, err, KindTrap)
			if res == nil || len(res.Stdout) != 0 {
				t.Fatalf("run %d, after a grown run: got %q, %v; want a trap and no output", i, stdout(res), err)
			}
		}
	})
}

// The same for the table: wasmtime keeps a table's slot resident and
// zeroes it in place (poolTableKeepResident); a task that rewrote its
// table must not leave that to the next.
func TestSandbox_TaskSeesNothingOfThePreviousTasksTable(t *testing.T) {
	mod := put(t, wasmtest.TableResidue())
	eachRunner(t, func(t *testing.T, r runner) {
		for i := range 4 {
			res, err := r.run(testCtx(t), &Request{ModuleHash: mod})
			if err != nil || string(res.Stdout) != "clean\n" {
				t.Fatalf("run %d: got %q, %v", i, stdout(res), err)
			}
		}
	})
}

func TestSandbox_InitialMemoryOverLimitIsKindMemory(t *testing.T) {
	huge := put(t, wasmtest.HugeInitialMemory(1000)) // 62.5 MiB
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: huge, Limits: Limits{MemoryBytes: 8 << 20}})
		wantKind(t, err, KindMemory)
		if res != nil || !strings.Contains(err.Error(), "needs 62.5 MiB of memory at start") {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
}

func TestSandbox_OutputFloodIsKindOutput(t *testing.T) {
	const max = 100_000 // not a multiple of the 4 KiB writes
	for _, fd := range []int32{1, 2} {
		flood := put(t, wasmtest.OutputFlood(fd))
		stream := map[int32]string{1: "stdout", 2: "stderr"}[fd]
		t.Run(stream, func(t *testing.T) {
			eachRunner(t, func(t *testing.T, r runner) {
				res, err := r.run(testCtx(t), &Request{ModuleHash: flood, Limits: Limits{MaxOutput: max}})
				wantKind(t, err, KindOutput)
				if !strings.Contains(err.Error(), "limit to "+stream) {
					t.Fatalf("err = %v, want it to name %s", err, stream)
				}
				got := map[int32][]byte{1: res.Stdout, 2: res.Stderr}[fd]
				if len(got) != max || got[0] != 'x' || got[max-1] != 'x' {
					t.Fatalf("%s holds %d bytes, want the first %d", stream, len(got), max)
				}
			})
		})
	}
}

func TestSandbox_GarbageAfterMagicIsInvalidModule(t *testing.T) {
	bad := put(t, wasmtest.GarbageAfterMagic())
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: bad})
		wantKind(t, err, KindInvalidModule)
		if res != nil || len(err.Error()) < len("invalid_module: ")+5 {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
}

func TestSandbox_ModulesThatCannotRunHereAreInvalid(t *testing.T) {
	unknown, noStart := put(t, wasmtest.ImportsUnknown()), put(t, wasmtest.NoStart())
	eachRunner(t, func(t *testing.T, r runner) {
		_, err := r.run(testCtx(t), &Request{ModuleHash: unknown})
		wantKind(t, err, KindInvalidModule)
		if !strings.Contains(err.Error(), "env.missing") {
			t.Fatalf("err = %v, want it to name the import", err)
		}
		_, err = r.run(testCtx(t), &Request{ModuleHash: noStart})
		wantKind(t, err, KindInvalidModule)
	})
}

func TestSandbox_MissingModuleIsPlainError(t *testing.T) {
	missing := HashModule([]byte("never stored"))
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: missing})
		if !errors.Is(err, ErrModuleNotFound) || KindOf(err) != "" || res != nil {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
}

func TestSandbox_BadEnvIsInvalidRequest(t *testing.T) {
	hello := put(t, wasmtest.Hello("", "", 0))
	eachRunner(t, func(t *testing.T, r runner) {
		_, err := r.run(testCtx(t), &Request{ModuleHash: hello, Env: map[string]string{"A=B": "c"}})
		if !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("err = %v", err)
		}
	})
}

// The clock and random numbers a task sees depend on nothing but the
// request: the same seed gives the same bytes, another seed other random
// bytes but the same clock.
func TestSandbox_ClockAndRandomAreDeterministic(t *testing.T) {
	mod := put(t, wasmtest.ClockRandom())
	eachRunner(t, func(t *testing.T, r runner) {
		run := func(seed uint64) []byte {
			res, err := r.run(testCtx(t), &Request{ModuleHash: mod, Seed: seed})
			if err != nil || len(res.Stdout) != 32 {
				t.Fatalf("got %q, %v", stdout(res), err)
			}
			return res.Stdout
		}
		a, b, other := run(1), run(1), run(2)
		if !bytes.Equal(a, b) {
			t.Fatalf("same seed, different bytes:\n%x\n%x", a, b)
		}
		if !bytes.Equal(a[:16], other[:16]) || bytes.Equal(a[16:], other[16:]) {
			t.Fatalf("seed 1 vs 2: clocks must match, random must differ:\n%x\n%x", a, other)
		}
		if wall := binary.LittleEndian.Uint64(a); wall != uint64(clockEpoch) {
			t.Fatalf("first realtime reading = %d, want the fixed epoch %d", wall, clockEpoch)
		}
	})
}

func TestModuleDir_PutRejectsNonWasm(t *testing.T) {
	_, err := testModules.Put(wasmtest.NotWasm())
	wantKind(t, err, KindInvalidModule)
	if !strings.Contains(err.Error(), `not a WebAssembly module (starts with "#!/bin/s`) {
		t.Fatalf("err = %v", err)
	}
	if err := CheckModule([]byte{0, 'a', 's', 'm', 2, 0, 0, 0}); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("version 2: err = %v", err)
	}
}

func TestModuleDir_PutIsIdempotentAndHashed(t *testing.T) {
	dir := ModuleDir(t.TempDir())
	mod := wasmtest.Exit(42)
	h1, err := dir.Put(mod)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := dir.Put(mod)
	if err != nil || h1 != h2 || h1 != HashModule(mod) || !dir.Has(h1) {
		t.Fatalf("put twice: %s, %s, %v", h1, h2, err)
	}
	if dir.Has("../" + h1) {
		t.Fatal("Has accepted a path, not a hash")
	}
}

// A module file that no longer matches its hash is not the task's fault.
func TestEngine_CorruptModuleFileIsPlainError(t *testing.T) {
	dir := ModuleDir(t.TempDir())
	hash, err := dir.Put(wasmtest.Exit(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(dir.Path(hash), wasmtest.Exit(2)); err != nil {
		t.Fatal(err)
	}
	eng := newEngine(t, EngineConfig{ModuleDir: dir})
	_, err = eng.Run(testCtx(t), &Request{ModuleHash: hash})
	if !errors.Is(err, ErrModuleCorrupt) || KindOf(err) != "" {
		t.Fatalf("err = %v", err)
	}
}

func TestEngine_InterruptibleStopsLoopAtTimeout(t *testing.T) {
	loop := put(t, wasmtest.WriteThenLoop("before the loop", ""))
	eng := newEngine(t, EngineConfig{CacheDir: testCacheDir, Interruptible: true})
	res, err := eng.Run(testCtx(t), &Request{ModuleHash: loop, Limits: Limits{Timeout: 100 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	if err.Error() != "timeout: task ran past its 100ms limit" || string(res.Stdout) != "before the loop" {
		t.Fatalf("got %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := eng.Run(ctx, &Request{ModuleHash: loop}); !errors.Is(err, context.Canceled) || KindOf(err) != "" {
		t.Fatalf("cancelled: err = %v", err)
	}
}

// Go-heap memory is only for comparison, but keeps the same limits.
func TestEngine_HeapMemoryKeepsTheMemoryLimit(t *testing.T) {
	const grow = 30
	mod, bomb := put(t, wasmtest.GrowMemory(grow)), put(t, wasmtest.MemoryBomb())
	eng := newEngine(t, EngineConfig{CacheDir: testCacheDir, HeapMemory: true})
	exact := uint64(wasmtest.MemoryPages+grow) * wasmPageSize
	if res, err := eng.Run(testCtx(t), &Request{ModuleHash: mod, Limits: Limits{MemoryBytes: exact}}); err != nil || string(res.Stdout) != "ok" {
		t.Fatalf("at the limit: got %q, %v", stdout(res), err)
	}
	_, err := eng.Run(testCtx(t), &Request{ModuleHash: bomb, Limits: Limits{MemoryBytes: 8 << 20}})
	wantKind(t, err, KindMemory)
}

func TestKindOf(t *testing.T) {
	wrapped := errors.Join(errors.New("context"), &TaskError{Kind: KindTimeout, Msg: "x"})
	for _, tc := range []struct {
		err  error
		want Kind
	}{{nil, ""}, {errors.New("plain"), ""}, {wrapped, KindTimeout}, {&TaskError{Kind: KindCrash}, KindCrash}} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if !errors.Is(wrapped, ErrTimeout) || errors.Is(wrapped, ErrTrap) {
		t.Error("TaskError does not unwrap to its own sentinel only")
	}
}
