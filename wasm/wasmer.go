//go:build cgo && ((linux && amd64) || darwin)

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
	"sync"
	"time"

	"github.com/wasmerio/wasmer-go/wasmer"
)

// wasmerBuilt: this binary has the wasmer engine (cgo and a bundled
// libwasmer for this platform).
const wasmerBuilt = true

// wasmerCacheVersion names the on-disk format of compiled modules.
const wasmerCacheVersion = "wasmer-go-1.0.4-cranelift"

// wasmerEngine runs modules with wasmer-go (Cranelift). wasmer has no
// memory limit, no per-instance stdin and real clocks, so the sandbox is
// built around it:
//
//   - each module is compiled with its memory capped at the request's limit
//     (memcap.go), so the key of a compiled module is (hash, limit);
//   - WASI is peergrid's own (wasi.go, bound in wasmer_wasi.go), fed by the
//     same sandbox as every engine's;
//   - nothing can stop a running instance: executors are killed at the
//     deadline, and EngineConfig.Interruptible is not supported.
type wasmerEngine struct {
	cfg    EngineConfig
	engine *wasmer.Engine
	store  *wasmer.Store

	// Dropped modules are freed by wasmer-go once no run holds them.
	modules *compileCache[wasmerKey, *wasmerModule]

	mu    sync.Mutex
	hosts []*wasmerHost // idle host function sets
}

var _ Engine = (*wasmerEngine)(nil)

type wasmerKey struct {
	hash  string
	pages uint32 // memory cap
}

// wasmerModule is one module compiled with one memory cap. module is nil
// when the module needs more memory at start than the cap (Run refuses it).
type wasmerModule struct {
	module    *wasmer.Module
	minMemory uint64
}

func newWasmer(_ context.Context, cfg EngineConfig) (Engine, error) {
	if cfg.Interruptible {
		return nil, fmt.Errorf("%w: the wasmer engine cannot be interrupted; run it in executors", ErrEngineUnavailable)
	}
	engine := wasmer.NewEngine()
	return &wasmerEngine{
		cfg: cfg, engine: engine, store: wasmer.NewStore(engine),
		modules: newCompileCache[wasmerKey, *wasmerModule](nil),
	}, nil
}

// Close implements Engine. Compiled modules and the store are released
// when the engine is no longer referenced (wasmer-go frees them by
// finalizer; closing them here would race with runs still in progress).
func (e *wasmerEngine) Close(context.Context) error {
	e.modules.reset()
	return nil
}

// Run implements Engine.
func (e *wasmerEngine) Run(ctx context.Context, req *Request) (*Result, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := req.Limits.memoryBytes()
	mod, err := e.module(req.ModuleHash, limitPages(limit))
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
	defer release() // _start has returned by then: no host call reads it any more
	res, err := e.run(ctx, mod, req, stdin)
	if res != nil {
		res.Engine = EngineWasmer
	}
	return res, err
}

// limitPages is the most whole pages a limit allows.
func limitPages(limit uint64) uint32 {
	return uint32(min(limit/wasmPageSize, 1<<16))
}

func (e *wasmerEngine) run(ctx context.Context, mod *wasmerModule, req *Request, stdin io.Reader) (*Result, error) {
	box := newSandbox(req, true) // wasmer allocates memory itself; the limit is in the module
	defer box.close()
	host := e.takeHost()
	defer e.putHost(host)
	run := &wasmerRun{wasiRun: newWASIRun(req, box, stdin)}
	host.run = run
	defer func() { host.run = nil }()

	start := time.Now() // from the WASI setup: it is most of a tiny task's cost here
	imports := e.imports(host)
	probe, _ := ctx.Value(probeKey{}).(*runProbe)
	if probe != nil {
		probe.attach(box, start)
	}
	err := e.instantiateAndStart(mod, imports, run, probe)
	d := time.Since(start)
	switch {
	case run.stop != stopNone:
		err = run.stopErr()
	case err != nil: // worded as wazero words its traps
		err = errors.New("wasm error: " + err.Error())
	}
	return classify(box, req.Limits, err, false, d)
}

// instantiateAndStart runs mod in a new instance, closed after the answer
// in an executor (probe.teardown).
func (e *wasmerEngine) instantiateAndStart(mod *wasmerModule, imports *wasmer.ImportObject, run *wasmerRun, probe *runProbe) error {
	inst, err := wasmer.NewInstance(mod.module, imports)
	if err != nil {
		return err
	}
	defer func() { probe.teardown(run.memorySize(), inst.Close) }()
	if mem, err := inst.Exports.GetMemory("memory"); err == nil {
		run.mem = mem
	}
	if g, err := inst.Exports.GetGlobal(stopExport); err == nil {
		run.stopGlobal = g
	}
	startFn, err := inst.Exports.GetFunction("_start")
	if err != nil {
		return err
	}
	run.box.enter()
	_, err = startFn()
	run.box.leave()
	if err != nil && growFailed(inst) {
		run.box.memory.hit.Store(true)
	}
	return err
}

func growFailed(inst *wasmer.Instance) bool {
	g, err := inst.Exports.GetGlobal(growFailedExport)
	if err != nil {
		return false
	}
	v, err := g.Get()
	return err == nil && v == int32(1)
}

// imports is peergrid's WASI (every function a task may import): wasmer's
// own WASI is not used at all.
func (e *wasmerEngine) imports(host *wasmerHost) *wasmer.ImportObject {
	imports := wasmer.NewImportObject()
	imports.Register(wasiModuleName, host.funcs)
	return imports
}

// takeHost returns an idle set of host functions, making one if none is
// idle. wasmer-go never frees a host function, so sets are reused: there
// are as many as runs ever ran at once.
func (e *wasmerEngine) takeHost() *wasmerHost {
	e.mu.Lock()
	if n := len(e.hosts); n > 0 {
		h := e.hosts[n-1]
		e.hosts = e.hosts[:n-1]
		e.mu.Unlock()
		return h
	}
	e.mu.Unlock()
	return newWasmerHost(e.store)
}

func (e *wasmerEngine) putHost(h *wasmerHost) {
	e.mu.Lock()
	e.hosts = append(e.hosts, h)
	e.mu.Unlock()
}

// module returns the module compiled with its memory capped at pages,
// compiling it on first use.
func (e *wasmerEngine) module(hash string, pages uint32) (*wasmerModule, error) {
	return e.modules.get(wasmerKey{hash, pages}, func() (*wasmerModule, error) { return e.compile(hash, pages) })
}

func (e *wasmerEngine) compile(hash string, pages uint32) (*wasmerModule, error) {
	data, err := e.cfg.ModuleDir.read(hash)
	if err != nil {
		return nil, err
	}
	if err := checkModuleToCompile(data); err != nil {
		return nil, err
	}
	m := &wasmerModule{minMemory: declaredMemoryMin(data)}
	if m.minMemory > uint64(pages)*wasmPageSize {
		return m, nil // Run refuses it: do not compile
	}
	capped, err := capModuleMemory(data, pages)
	if err != nil {
		if verr := wasmer.ValidateModule(e.store, data); verr != nil {
			return nil, &TaskError{Kind: KindInvalidModule, Msg: verr.Error()}
		}
		return nil, &TaskError{Kind: KindInvalidModule, Msg: err.Error()}
	}
	if m.module, err = e.load(capped); err != nil {
		return nil, err
	}
	if err := checkWasmerCommand(m.module); err != nil {
		return nil, err
	}
	return m, nil
}

// load compiles capped, or loads it from the disk cache that executors
// share. A cache entry is named by the hash of the capped module.
func (e *wasmerEngine) load(capped []byte) (*wasmer.Module, error) {
	var path string
	if e.cfg.CacheDir != "" {
		sum := sha256.Sum256(capped)
		path = filepath.Join(e.cfg.CacheDir, wasmerCacheVersion, hex.EncodeToString(sum[:]))
		if b, err := os.ReadFile(path); err == nil {
			if mod, err := wasmer.DeserializeModule(e.store, b); err == nil {
				return mod, nil
			}
		}
	}
	mod, err := wasmer.NewModule(e.store, capped)
	if err != nil {
		return nil, &TaskError{Kind: KindInvalidModule, Msg: err.Error()}
	}
	if path != "" {
		if b, err := mod.Serialize(); err == nil && os.MkdirAll(filepath.Dir(path), 0o755) == nil {
			_ = writeFileAtomic(path, b) // a cache: failing to write only costs a compile
		}
	}
	return mod, nil
}

// checkWasmerCommand applies the same rules as wazero's checkCommand: WASI
// function imports only (the functions wazero provides), and a _start that
// takes and returns nothing.
func checkWasmerCommand(mod *wasmer.Module) error {
	wasi := wasiFunctionNames
	for _, imp := range mod.Imports() {
		if imp.Type().Kind() == wasmer.MEMORY {
			return taskErrorf(KindInvalidModule, "module imports a memory, which the sandbox does not provide")
		}
		if imp.Module() != wasiModuleName || !wasi[imp.Name()] || imp.Type().Kind() != wasmer.FUNCTION {
			return taskErrorf(KindInvalidModule, "module imports %s.%s, which the sandbox does not provide", imp.Module(), imp.Name())
		}
	}
	for _, exp := range mod.Exports() {
		if exp.Name() != "_start" || exp.Type().Kind() != wasmer.FUNCTION {
			continue
		}
		ft := exp.Type().IntoFunctionType()
		if len(ft.Params()) != 0 || len(ft.Results()) != 0 {
			return taskErrorf(KindInvalidModule, "module's _start takes or returns values")
		}
		return nil
	}
	return taskErrorf(KindInvalidModule, "module exports no _start function (is it a WASI command?)")
}
