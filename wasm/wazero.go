package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// maxCompiledModules bounds the compiled modules an engine keeps in memory;
// the least recently used beyond it are closed (the disk cache keeps them).
const maxCompiledModules = 64

type wazeroEngine struct {
	cfg     EngineConfig
	runtime wazero.Runtime
	cache   wazero.CompilationCache // nil without CacheDir
	base    wazero.ModuleConfig

	modules *compileCache[string, *compiledModule]
}

var _ Engine = (*wazeroEngine)(nil)

// compiledModule is one module compiled once per engine.
type compiledModule struct {
	code      wazero.CompiledModule
	minMemory uint64 // bytes the module's memory needs at start
}

// NewWazero returns an engine backed by wazero. With cfg.CacheDir, compiled
// code is kept on disk and shared by every engine and executor using that
// directory; compiled modules are also kept in memory, so a warm run is
// instantiate and run only.
func NewWazero(ctx context.Context, cfg EngineConfig) (Engine, error) {
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(cfg.Interruptible)
	// Closing a dropped module is safe while instances of it still run.
	release := func(m *compiledModule) { _ = m.code.Close(context.Background()) }
	e := &wazeroEngine{cfg: cfg, modules: newCompileCache[string](release)}
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wazero compile cache %s: %w", cfg.CacheDir, err)
		}
		e.cache, rc = cache, rc.WithCompilationCache(cache)
	}
	e.runtime = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateWASI(ctx, e.runtime); err != nil {
		_ = e.Close(ctx)
		return nil, fmt.Errorf("wazero: WASI: %w", err)
	}
	// No name (instances may run side by side), no start function (Run
	// calls _start itself, to tell a failed instantiation from a failed
	// run). Args, env, stdio, clocks and random are peergrid's WASI's, so
	// wazero's own random source is never read: it is given one, because
	// the default seeds a math/rand source for every instance, which cost
	// a fifth of a tiny task in its executor.
	e.base = wazero.NewModuleConfig().WithName("").WithStartFunctions().WithRandSource(unusedRandom{})
	return e, nil
}

// Close implements Engine.
func (e *wazeroEngine) Close(ctx context.Context) error {
	err := e.runtime.Close(ctx) // also closes every compiled module
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// Run implements Engine.
func (e *wazeroEngine) Run(ctx context.Context, req *Request) (*Result, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mod, err := e.module(ctx, req.ModuleHash)
	if err != nil {
		return nil, err
	}
	if limit := req.Limits.memoryBytes(); mod.minMemory > limit {
		return nil, taskErrorf(KindMemory, "module needs %s of memory at start, more than its %s limit",
			formatBytes(mod.minMemory), formatBytes(limit))
	}
	stdin, release, err := openStdin(req)
	if err != nil {
		return nil, err
	}
	defer release() // the module has returned (or was closed) by then: nothing reads it any more
	res, err := e.run(ctx, mod.code, req, stdin)
	if res != nil {
		res.Engine = EngineWazero
	}
	return res, err
}

func (e *wazeroEngine) run(ctx context.Context, code wazero.CompiledModule, req *Request, stdin io.Reader) (*Result, error) {
	box := newSandbox(req, e.cfg.HeapMemory)
	defer box.close()
	runCtx := withWASIRun(experimental.WithMemoryAllocator(ctx, box.memory), newWASIRun(req, box, stdin))
	if e.cfg.Interruptible && req.Limits.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, req.Limits.Timeout)
		defer cancel()
	}
	start := time.Now()
	probe, _ := ctx.Value(probeKey{}).(*runProbe)
	if probe != nil {
		probe.attach(box, start)
	}
	err := e.instantiateAndStart(runCtx, code, e.base, box, probe)
	d := time.Since(start)
	if err == nil || !e.cfg.Interruptible {
		return classify(box, req.Limits, err, false, d)
	}
	if ctx.Err() != nil {
		return box.result(-1, d), ctx.Err() // the caller gave up: not the task's fault
	}
	return classify(box, req.Limits, err, runCtx.Err() != nil, d)
}

// instantiateAndStart runs code in a new instance. Closing it and freeing
// its memory happen after the answer, in an executor (probe.teardown).
func (e *wazeroEngine) instantiateAndStart(ctx context.Context, code wazero.CompiledModule, cfg wazero.ModuleConfig, box *sandbox, probe *runProbe) error {
	mod, err := e.runtime.InstantiateModule(ctx, code, cfg)
	if err != nil {
		box.memory.freeAll() // of an instantiation that failed half-way
		return err
	}
	defer func() {
		probe.teardown(box.memory.peakBytes(), func() {
			_ = mod.Close(ctx)
			box.memory.freeAll()
		})
	}()
	box.enter()
	_, err = mod.ExportedFunction("_start").Call(ctx)
	box.leave()
	return err
}

// classify turns how the module ended into a Result and error, in order of
// cause: a stdout file that could not be written, deadline, output cap,
// memory cap, then the module's own exit or trap.
func classify(box *sandbox, lim Limits, err error, timedOut bool, d time.Duration) (*Result, error) {
	if ferr := box.stdout.fileError(); ferr != nil { // the worker's disk, not the task
		return box.result(-1, d), ferr
	}
	if err == nil {
		return box.result(0, d), nil
	}
	if timedOut {
		return box.result(-1, d), timeoutError(lim.Timeout)
	}
	if oe := box.outputError(); oe != nil {
		return box.result(-1, d), oe
	}
	code, exited := exitCode(err)
	if exited && code == 0 {
		return box.result(0, d), nil
	}
	res := box.result(-1, d)
	if exited {
		res.ExitCode = code
	}
	if box.memory.limitHit() {
		return res, taskErrorf(KindMemory, "task tried to use more than its %s memory limit, then %s",
			formatBytes(box.memory.limit), failureText(err, exited, code))
	}
	if exited {
		return res, taskErrorf(KindExit, "task exited with code %d", code)
	}
	return res, &TaskError{Kind: KindTrap, Msg: trapText(err)}
}

func exitCode(err error) (int, bool) {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode()), true
	}
	return 0, false
}

func failureText(err error, exited bool, code int) string {
	if exited {
		return fmt.Sprintf("exited with code %d", code)
	}
	return "trapped: " + firstLine(trapText(err))
}

// trapText is wazero's error with the stack trace, without the wrapping
// prefixes that name wazero's internals.
func trapText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "wasm error: "); i > 0 {
		s = s[i:]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func timeoutError(limit time.Duration) *TaskError {
	return taskErrorf(KindTimeout, "task ran past its %s limit", limit)
}

// module returns the compiled module for hash, compiling it on first use.
func (e *wazeroEngine) module(ctx context.Context, hash string) (*compiledModule, error) {
	return e.modules.get(hash, func() (*compiledModule, error) { return e.compile(ctx, hash) })
}

func (e *wazeroEngine) compile(ctx context.Context, hash string) (*compiledModule, error) {
	data, err := e.cfg.ModuleDir.read(hash)
	if err != nil {
		return nil, err
	}
	if err := checkModuleToCompile(data); err != nil {
		return nil, err
	}
	code, err := e.runtime.CompileModule(ctx, data)
	if err != nil {
		return nil, &TaskError{Kind: KindInvalidModule, Msg: err.Error()}
	}
	if err := e.checkCommand(code); err != nil {
		_ = code.Close(ctx)
		return nil, err
	}
	return &compiledModule{code: code, minMemory: declaredMemoryMin(data)}, nil
}

// checkCommand rejects, before any run, modules the sandbox cannot run: ones
// importing anything but WASI functions, and ones without _start.
func (e *wazeroEngine) checkCommand(code wazero.CompiledModule) error {
	for _, f := range code.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != wasiModuleName || !wasiFunctionNames[name] {
			return taskErrorf(KindInvalidModule, "module imports %s.%s, which the sandbox does not provide", mod, name)
		}
	}
	if len(code.ImportedMemories()) > 0 {
		return taskErrorf(KindInvalidModule, "module imports a memory, which the sandbox does not provide")
	}
	start, ok := code.ExportedFunctions()["_start"]
	if !ok {
		return taskErrorf(KindInvalidModule, "module exports no _start function (is it a WASI command?)")
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return taskErrorf(KindInvalidModule, "module's _start takes or returns values")
	}
	return nil
}

// unusedRandom is wazero's random source, which peergrid's WASI never
// reads; reading it is a bug, and says so.
type unusedRandom struct{}

func (unusedRandom) Read([]byte) (int, error) {
	return 0, errors.New("peergrid: wazero's own random source is not the task's")
}

// probeKey carries a *runProbe in a context, for executors.
type probeKey struct{}

func withProbe(ctx context.Context, p *runProbe) context.Context {
	return context.WithValue(ctx, probeKey{}, p)
}
