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
//     mmap-backed linear memory) and, where built with cgo on linux/amd64 or
//     macOS, wasmer-go (Cranelift; wasmer.go, with the module rewrite that
//     caps its memory and stops it from host calls in memcap.go and the WASI
//     functions it gets from peergrid in wasmer_wasi.go). AvailableEngines
//     says which this binary has; both give the same bytes;
//   - choosing the engine: Request.Engine names one, or "auto", and a Pool
//     offering several (PoolConfig.Engines) keeps per module the one that
//     ran it faster (EngineChooser);
//   - executors: long-lived child processes (the binary re-executed with
//     PEERGRID_EXECUTOR=1, see MaybeRunExecutor) that each run one task at a
//     time on any engine, and the Pool that hands tasks to them, kills a
//     child at the task's deadline (the only way to stop wasmer) and
//     replaces a child that dies; the pool can pause and resume its busy
//     children (SIGSTOP, SIGCONT) and cap their CPU by duty-cycling them,
//     with stopped time kept off the task's clock (pause.go, cpulimit.go),
//     and start them at the lowest CPU priority (priority_*.go);
//   - the module directory (ModuleDir): module files named by their SHA-256.
//
// Failures are values of *TaskError with a Kind (trap, exit, timeout,
// memory, output, invalid_module, crash); anything else (a missing module, a
// closed pool, a cancelled context) is a plain error and not the task's fault.
//
// It must not know anything of the grid: no jobs, leases, ledger, peers,
// storage or network. Callers give it module bytes or hashes and requests,
// and get back results; deciding what a result means is theirs.
package wasm
