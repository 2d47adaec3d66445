package wasm

import (
	"slices"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// funcModule is a module with one page of memory and an exported _start
// whose body is the raw instructions given.
func funcModule(body ...byte) []byte {
	m := wasmtest.NewModule()
	m.Memory(1, 1)
	m.Export("_start", m.Func(nil, nil, nil, wasmtest.Code(body)))
	return m.Bytes()
}

var (
	v128Zero = append([]byte{0xfd, 0x0c}, make([]byte, 16)...) // v128.const 0
	header   = []byte("\x00asm\x01\x00\x00\x00")
)

// Threads (shared memory, atomics) and relaxed SIMD make a task's bytes
// depend on the worker: every engine refuses them before compiling, as
// invalid_module saying what to build without; plain SIMD passes.
func TestCheck_ThreadsAndRelaxedSIMDAreRefusedSayingWhy(t *testing.T) {
	refused := map[string]struct {
		module []byte
		want   string
	}{
		"atomic load":     {funcModule(0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a), "atomic instruction"},
		"atomic fence":    {funcModule(0xfe, 0x03, 0x00), "atomic instruction"},
		"relaxed swizzle": {funcModule(slices.Concat(v128Zero, v128Zero, []byte{0xfd, 0x80, 0x02, 0x1a})...), "relaxed SIMD (instruction 0xfd 0x100)"},
		"relaxed dot":     {funcModule(slices.Concat(v128Zero, v128Zero, v128Zero, []byte{0xfd, 0x93, 0x02, 0x1a})...), "relaxed SIMD (instruction 0xfd 0x113)"},
		"shared memory":   {slices.Concat(header, []byte{5, 4, 1, 0x03, 1, 1}), "defines a shared memory"},
		"shared memory import": {slices.Concat(header, []byte{2, 16, 1, 3}, []byte("env"), []byte{6}, []byte("memory"), []byte{2, 0x03, 1, 1}),
			"imports a shared memory"},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			err := Check(c.module)
			if KindOf(err) != KindInvalidModule || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check: %v, want invalid_module saying %q", err, c.want)
			}
		})
	}
	plain := funcModule(slices.Concat(v128Zero, v128Zero, []byte{0xfd, 0x0e, 0x1a})...) // i8x16.swizzle
	if err := Check(plain); err != nil {
		t.Fatalf("plain SIMD: %v", err)
	}
	_, pool := shared(t)
	atomic := put(t, refused["atomic load"].module)
	for _, engine := range AvailableEngines() {
		_, err := pool.Run(testCtx(t), &Request{ModuleHash: atomic, Engine: engine})
		if KindOf(err) != KindInvalidModule || !strings.Contains(err.Error(), "threads proposal") {
			t.Errorf("%s ran a module with atomics: %v, want invalid_module naming threads", engine, err)
		}
	}
}
