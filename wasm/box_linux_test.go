//go:build linux

package wasm

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// tableGrowBomb is a module whose _start grows a funcref table by entries,
// times times: memory no engine counts against the task's cap (a table
// entry is 8 bytes or more).
func tableGrowBomb(entries int32, times int) []byte {
	body := []byte{0} // no locals
	for range times {
		body = append(body, 0xd0, 0x70, 0x41) // ref.null func; i32.const
		body = appendSLEB(body, int64(entries))
		body = append(body, 0xfc, 15, 0, 0x1a) // table.grow 0; drop
	}
	body = append(body, 0x0b)
	code := append(binary.AppendUvarint([]byte{secCode, 1}, uint64(len(body))), body...)
	return moduleBytes(
		[]byte{secType, 1, 0x60, 0, 0},
		[]byte{secFunction, 1, 0},
		[]byte{secTable, 1, 0x70, 0, 0},
		[]byte{secExport, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0},
		code)
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Acceptance: a module that allocates past its cap where the engine does
// not look (a table.grow loop: 4.4 GB on wazero, 1.6 GB on wasmer under a
// 1 MiB cap on main) is stopped by the memory box, reported as KindMemory
// naming the box, its executor replaced, and the next task on the pool
// runs. wasmtime's pooling allocator refuses the growth itself.
func TestPool_TableBombIsStoppedByTheMemoryBox(t *testing.T) {
	bomb := put(t, tableGrowBomb(50_000_000, 4))
	hello := put(t, wasmtest.Hello("next\n", "", 0))
	for _, engine := range AvailableEngines() {
		t.Run(engine, func(t *testing.T) {
			p := newTestPool(t, PoolConfig{Size: 1, Engines: []string{engine}})
			before := p.pids()
			start := time.Now()
			_, bombErr := p.Run(testCtx(t), &Request{ModuleHash: bomb, Limits: Limits{MemoryBytes: 1 << 20, Timeout: time.Minute}})
			took := time.Since(start)
			switch err := bombErr; {
			case engine == EngineWasmtime && err == nil:
			case KindOf(err) == KindMemory && strings.Contains(err.Error(), "memory box (the task's 1 MiB cap + "):
				if st := p.Stats(); st.DiedOfMemory != 1 {
					t.Fatalf("stats %+v, want one death of memory", st)
				}
				waitFor(t, "the executor to be replaced", func() bool {
					after := p.pids()
					return len(after) == 1 && after[0] != before[0]
				})
			default:
				t.Fatalf("after %s: err = %v, want the box to stop it", took, err)
			}
			res, err := p.Run(testCtx(t), &Request{ModuleHash: hello})
			if err != nil || string(res.Stdout) != "next\n" {
				t.Fatalf("next task: %+v, %v", res, err)
			}
			t.Logf("%s: stopped in %s: %v", engine, took, bombErr)
		})
	}
}

// Acceptance: an executor whose resident memory stays grown after a task
// is replaced, not given the next task; one that did not grow is kept.
func TestPool_ExecutorWhoseMemoryGrewIsReplaced(t *testing.T) {
	hello := put(t, wasmtest.Hello("hi\n", "", 0))
	p := newTestPool(t, PoolConfig{Size: 1, MaxExecutorGrowth: 64 << 20})
	first := p.pids()
	for range 3 {
		if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: EngineWazero}); err != nil || string(res.Stdout) != "hi\n" {
			t.Fatalf("got %+v, %v", res, err)
		}
	}
	if now := p.pids(); len(now) != 1 || now[0] != first[0] || p.Stats().ReplacedOvergrown != 0 {
		t.Fatalf("executors %v -> %v, stats %+v: a task that grew nothing replaced its executor", first, now, p.Stats())
	}
	res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: EngineWazero, Name: retainMarker + "200"})
	if err != nil || string(res.Stdout) != "hi\n" {
		t.Fatalf("the task itself is fine: got %+v, %v", res, err)
	}
	// The pool reads an executor's memory at most every rssCheckEvery: the
	// next tasks find it grown, until one is followed by the replacement.
	waitFor(t, "the executor that grew by 200 MiB to be replaced", func() bool {
		if p.Stats().ReplacedOvergrown > 0 {
			return true
		}
		if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: EngineWazero}); err != nil || string(res.Stdout) != "hi\n" {
			t.Fatalf("next task: got %+v, %v", res, err)
		}
		return false
	})
	if st := p.Stats(); st.ReplacedOvergrown != 1 {
		t.Fatalf("stats %+v, want exactly the one executor replaced", st)
	}
	waitFor(t, "a new executor", func() bool { now := p.pids(); return len(now) == 1 && now[0] != first[0] })
	if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello, Engine: EngineWazero}); err != nil || string(res.Stdout) != "hi\n" {
		t.Fatalf("next task: got %+v, %v", res, err)
	}
}

// Acceptance: a compile past PoolConfig.CompileTimeout fails the task as
// invalid_module naming the limit, the executor is replaced, and the next
// task runs. (The 2.9 MB Go guest takes seconds to compile on wazero; no
// disk cache, so it is compiled.)
func TestPool_CompilePastItsLimitIsInvalidModule(t *testing.T) {
	guest, hello := put(t, goGuest), put(t, wasmtest.Hello("next\n", "", 0))
	p, err := NewPool(testCtx(t), PoolConfig{Size: 1, ModuleDir: testModules, Engines: []string{EngineWazero}, CompileTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	before := p.pids()
	res, err := p.Run(testCtx(t), &Request{ModuleHash: guest, Name: "guest"})
	wantRefusedNaming(t, err, "compiling the module took longer than the 50ms limit on compiling")
	if res != nil {
		t.Fatalf("got a result %+v for a module that never ran", res)
	}
	waitFor(t, "a new executor", func() bool { now := p.pids(); return len(now) == 1 && now[0] != before[0] })
	if res, err := p.Run(testCtx(t), &Request{ModuleHash: hello}); err != nil || string(res.Stdout) != "next\n" {
		t.Fatalf("next task: got %+v, %v", res, err)
	}
}
