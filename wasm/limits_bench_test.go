package wasm

import (
	"context"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// bigFunction is a module whose _start is one body of about size bytes
// (i32.const 1; drop, repeated).
func bigFunction(size int) []byte {
	m := wasmtest.NewModule()
	c := make(wasmtest.Code, 0, size)
	for len(c)+3 < size {
		c = c.I32Const(1).Drop()
	}
	m.Export("_start", m.Func(nil, nil, nil, c))
	return m.Bytes()
}

// What the biggest modules the structural limits allow cost to compile:
// the deepest nesting and the largest function body, on each engine, with
// no compile cache (a new engine per compile).
//
//	go test -run '^$' -bench 'CompileAtTheLimits' -benchtime 1x -count 2 ./wasm/
func BenchmarkCompileAtTheLimits(b *testing.B) {
	for name, module := range map[string][]byte{
		"nesting-5000": nestedBlocks(MaxBlockNesting),
		"nesting-2000": nestedBlocks(2000),
		"body-7654321": bigFunction(MaxFunctionSize - 16),
		"locals-50000": localsBomb(MaxFunctionLocals),
	} {
		hash := put(b, module)
		for _, engine := range AvailableEngines() {
			b.Run(name+"/"+engine, func(b *testing.B) {
				for b.Loop() {
					eng, err := NewEngine(context.Background(), engine, EngineConfig{ModuleDir: testModules})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := eng.Run(context.Background(), &Request{ModuleHash: hash}); err != nil {
						b.Fatal(err)
					}
					eng.Close(context.Background())
				}
			})
		}
	}
}
