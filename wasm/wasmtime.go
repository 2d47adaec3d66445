//go:build cgo && (linux || darwin) && (amd64 || arm64)

package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasmtimeBuilt: this binary has the wasmtime engine (cgo, and a platform
// whose static library wasmtime-go ships).
const wasmtimeBuilt = true

// wasmtimeCacheVersion names the on-disk format of compiled modules.
const wasmtimeCacheVersion = "wasmtime-go-39.0.1"

// wasmtimeEngine runs modules with wasmtime (Cranelift, default settings
// otherwise). The sandbox is built with wasmtime's own means where it has
// them:
//
//   - the memory cap is the store's limiter: a module is compiled once,
//     whatever the limit. Only whether a grow was refused is learnt from a
//     limit-independent rewrite (hookModuleGrow), as the limiter cannot say;
//   - WASI is peergrid's own (wasi.go): each function is a host function of
//     one engine-wide linker, and one that must stop the module returns a
//     trap, which wasmtime unwinds cleanly (unlike wasmer-go);
//   - nothing stops a running module: executors are killed at the
//     deadline, as wasmer's are, and EngineConfig.Interruptible is refused.
//     wasmtime's epoch interruption would stop it, but its checks made
//     tight loops up to 2.7x slower here (gemm: 159 ms plain, 431 ms with
//     epochs, best of 7), and fuel costs more;
//   - a module's code is compiled in one of two memory modes (memoryMode),
//     chosen per module by measuring (memoryModes): guarded, the fastest
//     code, which costs a Go-built module's task ~1 ms outside the module
//     here for re-protecting the memory it grew into, and bounds-checked,
//     which leaves that memory mapped and costs ~0.1 ms, but runs
//     memory-heavy loops up to 1.9x slower.
type wasmtimeEngine struct {
	cfg   EngineConfig
	codes [2]wasmtimeCode // by memoryMode
	modes *memoryModes

	modules  *compileCache[wasmtimeModuleKey, *wasmtimeModule]
	compiles atomic.Int64 // modules compiled here, not loaded from the disk cache
}

var _ Engine = (*wasmtimeEngine)(nil)

// wasmtimeCode is one way of compiling modules (a memoryMode): an engine
// with its own pooling allocator, and the linker holding peergrid's WASI.
type wasmtimeCode struct {
	engine *wasmtime.Engine
	linker *wasmtime.Linker
	cache  string // the disk cache's directory name for this code
}

type wasmtimeModuleKey struct {
	hash string
	mode memoryMode
}

// wasmtimeModule is one module, compiled once.
type wasmtimeModule struct {
	module    *wasmtime.Module
	minMemory uint64
	maxPages  uint64   // the module's own declared maximum, or 0 for none
	sum       [32]byte // SHA-256 of the bytes compiled, the disk cache's name
}

// newWasmtime makes both modes' engines at once: each reserves its
// allocator's pools (~2.5 GB of VmData, little resident), which an
// executor must count in its memory box's base before any task.
func newWasmtime(_ context.Context, cfg EngineConfig) (Engine, error) {
	if cfg.Interruptible {
		return nil, fmt.Errorf("%w: the wasmtime engine cannot be interrupted; run it in executors", ErrEngineUnavailable)
	}
	e := &wasmtimeEngine{cfg: cfg, modes: newMemoryModes(),
		modules: newCompileCache[wasmtimeModuleKey, *wasmtimeModule](nil)}
	e.modes.log = cfg.Logger
	for _, mode := range []memoryMode{modeGuarded, modeChecked} {
		c := wasmtime.NewConfig() // Cranelift at its default (speed) settings
		usePoolingAllocator(c, mode)
		engine := wasmtime.NewEngineWithConfig(c)
		code := wasmtimeCode{engine: engine, linker: wasmtime.NewLinker(engine), cache: wasmtimeCacheVersion}
		if mode == modeChecked {
			code.cache += "-checked"
		}
		if err := defineWASI(code.linker); err != nil {
			return nil, fmt.Errorf("wasmtime: WASI: %w", err)
		}
		e.codes[mode] = code
	}
	return e, nil
}

// defineWASI puts peergrid's WASI into linker, once for every store.
func defineWASI(linker *wasmtime.Linker) error {
	for _, f := range wasiFuncs {
		params := make([]*wasmtime.ValType, len(f.params))
		for i, t := range f.params {
			params[i] = wasmtime.NewValType(wasmtime.KindI32)
			if t == wasiI64 {
				params[i] = wasmtime.NewValType(wasmtime.KindI64)
			}
		}
		var results []*wasmtime.ValType
		if !f.noResult {
			results = []*wasmtime.ValType{wasmtime.NewValType(wasmtime.KindI32)}
		}
		call, noResult := f.call, f.noResult
		err := linker.FuncNew(wasiModuleName, f.name, wasmtime.NewFuncType(params, results),
			func(c *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
				r := c.Data().(*wasmtimeRun)
				var args [9]uint64
				for i, v := range a {
					if v.Kind() == wasmtime.KindI64 {
						args[i] = uint64(v.I64())
					} else {
						args[i] = uint64(uint32(v.I32()))
					}
				}
				errno := call(r.wasiRun, r.memory(c), args[:len(a)])
				if r.stop != stopNone {
					return nil, wasmtime.NewTrap("peergrid: stop")
				}
				if noResult {
					return nil, nil
				}
				return []wasmtime.Val{wasmtime.ValI32(int32(errno))}, nil
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// wasmtimeRun is one run's state, the store's data.
type wasmtimeRun struct {
	*wasiRun
	mem *wasmtime.Memory
}

func (r *wasmtimeRun) memory(c *wasmtime.Caller) []byte {
	if r.mem == nil {
		return nil
	}
	return r.mem.UnsafeData(c)
}

// memorySize is the size of the run's linear memory now, 0 if it has none.
func (r *wasmtimeRun) memorySize(store *wasmtime.Store) uint64 {
	if r.mem == nil {
		return 0
	}
	return uint64(r.mem.DataSize(store))
}

// memoryModes lets tests fix the engine's memory mode.
func (e *wasmtimeEngine) memoryModes() *memoryModes { return e.modes }

// Close implements Engine. wasmtime-go frees modules and the engine by
// finalizer once nothing uses them.
func (e *wasmtimeEngine) Close(context.Context) error {
	e.modules.reset()
	return nil
}

// Run implements Engine.
func (e *wasmtimeEngine) Run(ctx context.Context, req *Request) (*Result, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := req.Limits.memoryBytes()
	mode := e.modes.choose(req.ModuleHash, limit)
	mod, err := e.module(req.ModuleHash, mode)
	if errors.Is(err, errCompiling) { // another executor compiles the checked code: guarded meanwhile
		mode = modeGuarded
		mod, err = e.module(req.ModuleHash, mode)
	}
	if err != nil {
		return nil, err
	}
	if mod.minMemory > limit {
		return nil, taskErrorf(KindMemory, "module needs %s of memory at start, more than its %s limit",
			formatBytes(mod.minMemory), formatBytes(limit))
	}
	stdin, release, err := openStdin(req)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := e.run(ctx, mode, mod, req, stdin)
	if res != nil {
		res.Engine = EngineWasmtime
	}
	return res, err
}

// run runs mod in a new store. Closing the store returns its slots and
// zeroes the memory kept resident: after the answer, in an executor
// (probe.teardown). The run's memory mode is observed once the store is
// closed, with the close's time, as a mode's teardown is part of what it
// costs: guarded code's took ~1 ms of a Go-built module's task here
// (re-protecting the memory it grew into), checked code's ~0.07 ms.
func (e *wasmtimeEngine) run(ctx context.Context, mode memoryMode, mod *wasmtimeModule, req *Request, stdin io.Reader) (*Result, error) {
	box := newSandbox(req, true) // wasmtime allocates memory itself; the limiter caps it
	defer box.close()
	run := &wasmtimeRun{wasiRun: newWASIRun(req, box, stdin)}
	start := time.Now()
	probe, _ := ctx.Value(probeKey{}).(*runProbe)
	if probe != nil {
		probe.attach(box, start)
	}
	code := e.codes[mode]
	store := wasmtime.NewStoreWithData(code.engine, run)
	err := e.instantiateAndStart(store, code.linker, mod, run, req.Limits.memoryBytes())
	d := time.Since(start)
	switch {
	case run.stop != stopNone:
		err = run.stopErr()
	case err != nil:
		err = errors.New("wasm error: " + wasmtimeTrapText(err))
	}
	res, err := classify(box, req.Limits, err, false, d)
	var closing time.Duration
	deferred := probe.teardown(run.memorySize(store), func() {
		closeStart := time.Now()
		store.Close()
		closing = time.Since(closeStart)
		e.modes.observe(req.ModuleHash, mode, d+closing, box.moduleTime)
	})
	if !deferred {
		res.Duration = d + closing
	}
	return res, err
}

func (e *wasmtimeEngine) instantiateAndStart(store *wasmtime.Store, linker *wasmtime.Linker, mod *wasmtimeModule, run *wasmtimeRun, limit uint64) error {
	store.Limiter(int64(limit), -1, -1, -1, -1)
	inst, err := linker.Instantiate(store, mod.module)
	if err != nil {
		return err
	}
	if ext := inst.GetExport(store, "memory"); ext != nil {
		run.mem = ext.Memory()
	}
	start := inst.GetFunc(store, "_start")
	if start == nil {
		return errors.New("no _start")
	}
	run.box.enter()
	_, err = start.Call(store)
	run.box.leave()
	if err != nil && (mod.maxPages == 0 || mod.maxPages*wasmPageSize > limit) {
		if g := inst.GetExport(store, growFailedExport); g != nil && g.Global() != nil {
			if v, ok := g.Global().Get(store).Get().(int32); ok && v == 1 {
				run.box.memory.hit.Store(true)
			}
		}
	}
	return err
}

// wasmtimeTrapText is a trap's message with its wasm backtrace, without
// the host's stack.
func wasmtimeTrapText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\nStack backtrace:"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// module returns the module for hash compiled for mode, compiling it on
// first use. Checked code is a second compile, tried while guarded code
// runs the module's tasks: if another executor is compiling it, module
// returns errCompiling rather than wait (see load).
func (e *wasmtimeEngine) module(hash string, mode memoryMode) (*wasmtimeModule, error) {
	if mode == modeChecked && e.checkedCompilingElsewhere(hash) {
		return nil, errCompiling
	}
	return e.modules.get(wasmtimeModuleKey{hash, mode}, func() (*wasmtimeModule, error) {
		start := time.Now()
		m, err := e.compile(hash, e.codes[mode], mode == modeGuarded)
		if err == nil && mode == modeGuarded {
			e.modes.compiled(hash, time.Since(start), e.cached(e.codes[modeChecked], m.sum))
		}
		return m, err
	})
}

// checkedCompilingElsewhere reports whether another executor holds the
// lock on hash's checked code, not compiled here yet. Asked before
// compile, which reads and rewrites the whole module (2.6 MB for a
// Go-built one) only to find the lock taken: while one executor compiles,
// the others' tasks would each pay for that. The guarded code, compiled
// already, names the cache entry (both modes compile the same bytes).
func (e *wasmtimeEngine) checkedCompilingElsewhere(hash string) bool {
	if e.modules.has(wasmtimeModuleKey{hash, modeChecked}) {
		return false
	}
	guarded, err := e.module(hash, modeGuarded)
	if err != nil {
		return false
	}
	path := e.cachePath(e.codes[modeChecked], guarded.sum)
	if path == "" || e.cached(e.codes[modeChecked], guarded.sum) {
		return false
	}
	unlock, err := lockCacheEntry(path, false)
	if err != nil {
		return errors.Is(err, errCompiling)
	}
	unlock()
	return false
}

func (e *wasmtimeEngine) compile(hash string, code wasmtimeCode, wait bool) (*wasmtimeModule, error) {
	data, err := e.cfg.ModuleDir.read(hash)
	if err != nil {
		return nil, err
	}
	if err := checkModuleToCompile(data); err != nil {
		return nil, err
	}
	minPages, maxPages, hasMax := declaredMemory(data)
	m := &wasmtimeModule{minMemory: minPages * wasmPageSize}
	if hasMax {
		m.maxPages = max(maxPages, 1) // 0 means none
	}
	hooked, err := hookModuleGrow(data)
	if err != nil {
		if verr := wasmtime.ModuleValidate(code.engine, data); verr != nil {
			return nil, &TaskError{Kind: KindInvalidModule, Msg: verr.Error()}
		}
		return nil, &TaskError{Kind: KindInvalidModule, Msg: err.Error()}
	}
	m.sum = sha256.Sum256(hooked)
	if m.module, err = e.load(code, hooked, m.sum, wait); err != nil {
		return nil, err
	}
	if err := checkWasmtimeCommand(m.module); err != nil {
		return nil, err
	}
	return m, nil
}

// load compiles wasm for code, or loads it from the disk cache that
// executors share, named by the hash of the bytes compiled. One executor
// compiles while the others wait for the cache (lockCacheEntry), or, if
// not wait, return errCompiling: the executors of a worker get a module's
// first task at once, and each compiling it for itself cost a 2-core
// worker's executors 1.9-3.6 s each for the 2.6 MB spin module that one
// compiled in 1.1 s alone.
func (e *wasmtimeEngine) load(code wasmtimeCode, wasm []byte, sum [32]byte, wait bool) (*wasmtime.Module, error) {
	path := e.cachePath(code, sum)
	if path != "" {
		if mod, ok := loadCached(code, path); ok {
			return mod, nil
		}
		unlock, err := lockCacheEntry(path, wait)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if mod, ok := loadCached(code, path); ok { // compiled while we waited
			return mod, nil
		}
	}
	e.compiles.Add(1)
	mod, err := wasmtime.NewModule(code.engine, wasm)
	if err != nil {
		return nil, &TaskError{Kind: KindInvalidModule, Msg: firstLine(err.Error())}
	}
	if path != "" {
		if b, err := mod.Serialize(); err == nil && os.MkdirAll(filepath.Dir(path), 0o755) == nil {
			_ = writeFileAtomic(path, b) // a cache: failing to write only costs a compile
		}
	}
	return mod, nil
}

// loadCached loads code compiled for code's engine from the disk cache.
func loadCached(code wasmtimeCode, path string) (*wasmtime.Module, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	mod, err := wasmtime.NewModuleDeserialize(code.engine, b)
	return mod, err == nil
}

// cachePath is where the disk cache keeps code compiled from bytes whose
// SHA-256 is sum, or "" without a cache.
func (e *wasmtimeEngine) cachePath(code wasmtimeCode, sum [32]byte) string {
	if e.cfg.CacheDir == "" {
		return ""
	}
	return filepath.Join(e.cfg.CacheDir, code.cache, hex.EncodeToString(sum[:]))
}

// cached reports whether the disk cache has code compiled from bytes
// whose SHA-256 is sum.
func (e *wasmtimeEngine) cached(code wasmtimeCode, sum [32]byte) bool {
	path := e.cachePath(code, sum)
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// checkWasmtimeCommand applies the rules of wazero's checkCommand.
func checkWasmtimeCommand(mod *wasmtime.Module) error {
	for _, imp := range mod.Imports() {
		name := ""
		if imp.Name() != nil {
			name = *imp.Name()
		}
		if imp.Type().MemoryType() != nil {
			return taskErrorf(KindInvalidModule, "module imports a memory, which the sandbox does not provide")
		}
		if imp.Module() != wasiModuleName || !wasiFunctionNames[name] || imp.Type().FuncType() == nil {
			return taskErrorf(KindInvalidModule, "module imports %s.%s, which the sandbox does not provide", imp.Module(), name)
		}
	}
	for _, exp := range mod.Exports() {
		if exp.Name() != "_start" {
			continue
		}
		ft := exp.Type().FuncType()
		if ft == nil {
			break
		}
		if len(ft.Params()) != 0 || len(ft.Results()) != 0 {
			return taskErrorf(KindInvalidModule, "module's _start takes or returns values")
		}
		return nil
	}
	return taskErrorf(KindInvalidModule, "module exports no _start function (is it a WASI command?)")
}
