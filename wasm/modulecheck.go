package wasm

import "fmt"

// Limits on a module's structure. Every engine builds per-function data
// sized by what a module declares, before or while it compiles, and none
// bounds it by the task's memory cap: a 55-byte module declaring 250
// million locals grew an executor to 6.3 GB, and 100,000 nested blocks took
// 77 s to compile. So checkStructure refuses, before any engine sees the
// bytes, a module over any of these, as KindInvalidModule naming the limit.
// The figures are the ones V8 and wasmparser (wasmtime's validator) agree
// on, so a module a browser or wasmtime accepts is not refused here for
// these, except nesting, which neither bounds.
const (
	// MaxFunctionLocals is the most locals one function may declare
	// (V8's kV8MaxWasmFunctionLocals, wasmparser's MAX_WASM_FUNCTION_LOCALS).
	MaxFunctionLocals = 50_000
	// MaxFunctions is the most functions, imported and defined, a module
	// may have (V8's kV8MaxWasmFunctions, wasmparser's MAX_WASM_FUNCTIONS).
	MaxFunctions = 1_000_000
	// MaxFunctionSize is the most bytes one function body may have (V8's
	// kV8MaxWasmFunctionSize, wasmparser's MAX_WASM_FUNCTION_SIZE).
	MaxFunctionSize = 7_654_321
	// MaxBlockNesting is the deepest that blocks, loops and ifs may nest in
	// one function. wazero's compile time grows with the square of the
	// depth (2,000: 46 ms, 10,000: 1.4 s, 100,000: over a minute);
	// Go-built modules nest 549 deep, C kernels 31; compilers nest deeper
	// only for huge switches (a block per case). See BENCHMARKS.md,
	// "Structural limits".
	MaxBlockNesting = 5_000
	// MaxTableEntries is the most entries a table may start with
	// (wasmparser's MAX_WASM_TABLE_ENTRIES): a table is allocated at
	// instantiation, outside the memory cap.
	MaxTableEntries = 10_000_000
)

// Section ids the check reads besides memcap.go's.
const secTable = 4

// checkStructure refuses a module over the structural limits above. It
// reads only section headers, the function and table counts, and each
// function's locals and instructions (to measure nesting); it allocates
// nothing sized by what the module declares. A module whose bytes it cannot
// decode is refused too: the engines that rewrite modules (wasmer,
// wasmtime) refuse those already, so every engine answers the same.
func checkStructure(data []byte) error {
	secs, err := splitSections(data)
	if err != nil {
		return taskErrorf(KindInvalidModule, "%v", err)
	}
	var funcs uint64
	for _, s := range secs {
		var err error
		switch s.id {
		case secImport:
			var imp importInfo
			imp, err = readImports(s.body)
			funcs += uint64(imp.funcs)
			if err == nil && imp.sharedMemory {
				err = errThreads("it imports a shared memory")
			}
		case secMemory:
			err = checkMemories(s.body)
		case secFunction:
			var n uint32
			n, err = vecCount(s.body)
			funcs += uint64(n)
		case secTable:
			err = checkTables(s.body)
		case secCode:
			err = checkCode(s.body)
		}
		if err != nil {
			return asInvalidModule(err)
		}
		if funcs > MaxFunctions {
			return taskErrorf(KindInvalidModule, "module has %d functions, over the limit of %d", funcs, MaxFunctions)
		}
	}
	return nil
}

func asInvalidModule(err error) error {
	if KindOf(err) != "" {
		return err
	}
	return taskErrorf(KindInvalidModule, "%v", err)
}

func checkTables(body []byte) error {
	r := &reader{b: body}
	for n, i := r.u32(), uint32(0); i < n && r.err == nil; i++ {
		r.byte() // reference type
		flags := r.byte()
		lo := r.leb(10)
		if flags&1 != 0 {
			r.leb(10)
		}
		if r.err == nil && lo > MaxTableEntries {
			return taskErrorf(KindInvalidModule, "table %d starts with %d entries, over the limit of %d", i, lo, MaxTableEntries)
		}
	}
	return r.err
}

func checkCode(body []byte) error {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		if size > MaxFunctionSize {
			return taskErrorf(KindInvalidModule, "function %d has a %d-byte body, over the limit of %d bytes", i, size, MaxFunctionSize)
		}
		fn := r.take(int(size))
		if r.err != nil {
			break
		}
		if err := checkFunction(fn); err != nil {
			return fmt.Errorf("defined function %d: %w", i, err)
		}
	}
	if r.err != nil {
		return fmt.Errorf("%w: bad code section", errRewrite)
	}
	return nil
}

// checkFunction checks one body's locals and nesting.
func checkFunction(fn []byte) error {
	r := &reader{b: fn}
	var locals uint64
	for groups := r.u32(); groups > 0 && r.err == nil; groups-- {
		locals += uint64(r.u32())
		r.byte() // value type
		if locals > MaxFunctionLocals {
			return taskErrorf(KindInvalidModule, "a function declares %d or more locals, over the limit of %d", locals, MaxFunctionLocals)
		}
	}
	depth := 0
	for len(r.b) > 0 && r.err == nil {
		op := r.byte()
		switch op {
		case 0xfe: // the threads proposal's atomics
			return errThreads("a function uses an atomic instruction")
		case 0xfd:
			if sub := r.u32(); sub >= relaxedSIMDFirst && sub <= relaxedSIMDLast {
				return taskErrorf(KindInvalidModule, "the module uses relaxed SIMD (instruction 0xfd %#x), whose results differ between CPUs; "+
					"a task must give the same bytes on every worker: build without relaxed SIMD (e.g. no -mrelaxed-simd)", sub)
			} else {
				r.prefixFD(sub)
			}
			continue
		case 0x02, 0x03, 0x04: // block, loop, if
			depth++
			if depth > MaxBlockNesting {
				return taskErrorf(KindInvalidModule, "blocks nest deeper than the limit of %d", MaxBlockNesting)
			}
		case 0x0b: // end
			depth--
		}
		r.immediates(op)
	}
	if r.err != nil {
		return fmt.Errorf("%w: cannot decode its instructions", errRewrite)
	}
	return nil
}

// Relaxed SIMD's opcodes (after the 0xfd prefix): its results may differ
// between CPUs by design, so a task using it could give other bytes on
// another worker.
const relaxedSIMDFirst, relaxedSIMDLast = 0x100, 0x113

// errThreads refuses the threads proposal (shared memory, atomics): a task
// runs single-threaded in its sandbox, and no engine peergrid runs is set
// up to give threads, so the module is refused before any engine sees it
// rather than running on one engine and failing on another.
func errThreads(what string) error {
	return taskErrorf(KindInvalidModule, "%s, from the threads proposal; tasks are single-threaded (WASI preview 1 has no threads): "+
		"build without threads (e.g. no -pthread or +atomics)", what)
}

// checkMemories refuses a shared memory definition.
func checkMemories(body []byte) error {
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		if len(r.b) > 0 && r.b[0]&limitsShared != 0 {
			return errThreads("it defines a shared memory")
		}
		r.limits()
	}
	return r.err
}

// Check is every check a module passes before an engine compiles it, for
// a submitter's tools to run before uploading: the header, the structural
// limits (locals, functions, body size, nesting, table), and the features
// a task may not use (threads, relaxed SIMD). Its errors are of
// KindInvalidModule and name what was wrong.
func Check(data []byte) error { return checkModuleToCompile(data) }

// checkModuleToCompile is every check a module passes before an engine
// compiles it: the header (CheckModule), then its structure.
func checkModuleToCompile(data []byte) error {
	if err := CheckModule(data); err != nil {
		return err
	}
	return checkStructure(data)
}
