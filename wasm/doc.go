// Package wasm is peergrid's sandbox: it runs one task, a WebAssembly module
// (WASI preview 1), and reports what the task wrote and how it ended.
//
// It owns:
//
//   - the sandbox contract: args and environment from the request, stdin is
//     the task's input (bytes, or a file streamed to the task as it reads:
//     Request.StdinPath), stdout its result (in memory, or spilled to a file
//     as it is written past Request.StdoutSpill), stderr its log; no files, no
//     network; a memory cap, a wall-clock limit and an output cap; a clock
//     and random source that are fixed per task (seeded by Request.Seed), so
//     the same task gives the same bytes on every run and machine;
//   - engines (Engine) that run a module in-process, each with compiled-
//     module caches in memory and on disk: wazero (pure Go, always there,
//     mmap-backed linear memory) and, where built with cgo, wasmtime-go
//     (Cranelift; wasmtime.go: the store's limiter caps memory; a module's
//     code is guarded or bounds-checked, chosen per module by measuring,
//     memorymode.go; the executors sharing a disk cache compile each once,
//     cachelock.go) and wasmer-go (Cranelift; wasmer.go,
//     with the module rewrite that caps its memory and stops it from host
//     calls in memcap.go). AvailableEngines says which this binary has;
//   - WASI preview 1, peergrid's own (wasi.go), bound into every engine, so
//     a task gets the same answers, to the errno, and the same bytes on all;
//   - choosing the engine: Request.Engine names one, or "auto", and a Pool
//     offering several (PoolConfig.Engines) starts a module on the engine
//     fastest for long work and keeps per module the one that runs it
//     fastest (EngineChooser): on warm trials only (an executor's first
//     runs of a module on an engine are discarded), compared by the mean
//     of the executor's CPU time per task (Result.CPUTime), a tiny
//     module's trials of an engine run back to back on one executor;
//   - executors: long-lived child processes (the binary re-executed with
//     PEERGRID_EXECUTOR=1, see MaybeRunExecutor) that each run one task at a
//     time on any engine, answer, and only then tear its instance down
//     (teardown.go), and the Pool that hands tasks to them (one per
//     round trip, or tiny ones several to a write: RunBatch in batch.go;
//     the protocol is unchanged), kills a child at the task's deadline (unless its engine could interrupt the
//     task: wasmtime) and replaces a child that dies; the pool can pause
//     and resume its busy children (SIGSTOP, SIGCONT) and cap their CPU by
//     duty-cycling them, with stopped time kept off the task's clock
//     (pause.go, cpulimit.go), and start them at the lowest CPU priority
//     (priority_*.go) or, one per CPU, each pinned to its own CPU
//     (affinity_*.go);
//   - the memory box (box.go): on Linux an executor runs each task,
//     compile included, under RLIMIT_DATA sized from its own use, the
//     task's memory cap and an allowance for the engine; an executor that
//     dies of it fails the task as KindMemory naming the box, a compile
//     past PoolConfig.CompileTimeout as KindInvalidModule, and the pool
//     replaces an executor whose resident memory grew past
//     PoolConfig.MaxExecutorGrowth (Pool.Stats counts both);
//   - the module directory (ModuleDir): module files named by their SHA-256;
//   - refusing, before any engine compiles it, a module over the structural
//     limits (modulecheck.go: MaxFunctionLocals, MaxFunctions,
//     MaxFunctionSize, MaxBlockNesting, MaxTableEntries), since no engine
//     bounds what it builds from those by the task's memory cap.
//
// An executor started with PEERGRID_EXECUTOR_CPUPROFILE=DIR in its
// environment (ExecutorProfileEnv; a pool's children inherit the caller's)
// writes CPU profiles of itself to DIR in 2 s windows, for
// `go tool pprof -top BINARY DIR/executor-*.prof`.
//
// Failures are values of *TaskError with a Kind (trap, exit, timeout,
// memory, output, invalid_module, crash); anything else (a missing module, a
// closed pool, a cancelled context) is a plain error and not the task's fault.
//
// It must not know anything of the grid: no jobs, leases, ledger, peers,
// storage or network. Callers give it module bytes or hashes and requests,
// and get back results; deciding what a result means is theirs.
package wasm
