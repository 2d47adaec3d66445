package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// The rewrite for wasmer (memcap.go) must give a valid module that behaves
// as the original under the limit: checked with wazero, which this build
// always has, on the hand-made modules and the C kernels.
func TestCapModuleMemory_RewrittenModulesAreValidAndBehave(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	mods := map[string][]byte{
		"hello": wasmtest.Hello("x", "y", 3), "bomb": wasmtest.MemoryBomb(), "grow": wasmtest.GrowMemory(30),
		"flood": wasmtest.OutputFlood(1), "cat": wasmtest.Cat(), "no imports": wasmtest.HugeInitialMemory(2),
	}
	kernels, _ := filepath.Glob("testdata/kernels/c/*.wasm")
	for _, k := range kernels {
		data, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		mods[filepath.Base(k)] = data
	}
	for name, data := range mods {
		out, err := capModuleMemory(data, 4096)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		code, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s: rewritten module does not compile: %v", name, err)
		}
		for _, m := range code.ExportedMemories() {
			if max, ok := m.Max(); !ok || max > 4096 {
				t.Errorf("%s: memory max = %d, %v; want at most 4096 pages", name, max, ok)
			}
		}
		code.Close(ctx)
	}
	// Grows fail past the cap, and the failure is recorded.
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	grow := wasmtest.GrowMemory(30)
	for _, tc := range []struct {
		pages  uint32
		failed bool
	}{{wasmtest.MemoryPages + 30, false}, {wasmtest.MemoryPages + 29, true}} {
		out, err := capModuleMemory(grow, tc.pages)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		_, err = mod.ExportedFunction("_start").Call(ctx)
		failed := mod.ExportedGlobal(growFailedExport).Get() == 1
		if (err != nil) != tc.failed || failed != tc.failed {
			t.Errorf("cap %d pages: run err %v, grow_failed %v; want failure %v", tc.pages, err, failed, tc.failed)
		}
		mod.Close(ctx)
	}
}
