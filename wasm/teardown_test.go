package wasm

import (
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// An engine leaves an instance's teardown to an executor that asks for it
// (runProbe.deferTeardown), so the answer goes out first, and tears down
// at once otherwise: in process, and for a memory past deferTeardownMax,
// whose pages the pool would otherwise count as the executor's growth.
// The next run, after the teardown, starts from a fresh memory.
func TestEngines_LeaveTheTeardownToAnExecutorThatAsks(t *testing.T) {
	residue := put(t, wasmtest.Residue(1))
	const bigPages = deferTeardownMax/wasmPageSize + 1 // grown past the bound
	big := put(t, wasmtest.GrowMemory(bigPages))
	bigLimit := Limits{MemoryBytes: (wasmtest.MemoryPages + bigPages) * wasmPageSize}
	for _, engine := range AvailableEngines() {
		t.Run(engine, func(t *testing.T) {
			eng := sharedEngineNamed(t, engine)
			run := func(probe *runProbe, req *Request) *Result {
				t.Helper()
				res, err := eng.Run(withProbe(testCtx(t), probe), req)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			for i := range 3 {
				asks := &runProbe{deferTeardown: true}
				if res := run(asks, &Request{ModuleHash: residue}); string(res.Stdout) != "clean\n" {
					t.Fatalf("run %d: got %q, want a fresh memory", i, res.Stdout)
				}
				if len(asks.teardowns) == 0 {
					t.Fatalf("run %d: the instance was torn down before Run returned, though the probe asked to do it", i)
				}
				asks.finish()
				if len(asks.teardowns) != 0 {
					t.Fatal("teardowns left after finish")
				}
			}
			plain := &runProbe{}
			run(plain, &Request{ModuleHash: residue})
			if len(plain.teardowns) != 0 {
				t.Fatal("a teardown was left to a probe that did not ask")
			}
			asks := &runProbe{deferTeardown: true}
			if res := run(asks, &Request{ModuleHash: big, Limits: bigLimit}); string(res.Stdout) != "ok" {
				t.Fatalf("big memory: got %q", res.Stdout)
			}
			if len(asks.teardowns) != 0 {
				t.Fatalf("a memory of %d pages, past the %d MiB bound, was left to tear down later", wasmtest.MemoryPages+bigPages, deferTeardownMax>>20)
			}
		})
	}
}
