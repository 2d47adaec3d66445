package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// Engine runs modules in this process. Run is safe for concurrent use; each
// run gets its own instance, memory, clock and output.
//
// Every engine presents the same sandbox (sandbox.go): the same args, env
// order, stdin, clock readings, random bytes, limits and error kinds, so a
// task gives the same bytes whichever engine runs it.
type Engine interface {
	// Run runs req's module to completion. See Pool.Run for what it returns.
	Run(ctx context.Context, req *Request) (*Result, error)
	// Close releases the engine's compiled modules and runtime.
	Close(ctx context.Context) error
}

// EngineConfig configures an in-process engine.
type EngineConfig struct {
	CacheDir   string    // on-disk compile cache shared between processes; "" means memory only
	ModuleDir  ModuleDir // where modules are read from, by hash
	HeapMemory bool      // use Go-heap linear memory instead of mmap (for benchmark comparison)

	// Interruptible makes Run stop a module when ctx is done or at
	// Limits.Timeout. It costs speed: tight loops run 3-10x slower, because
	// the compiled code checks for cancellation. Executors leave it off and
	// are killed at the deadline instead; without it, Run ignores Timeout.
	Interruptible bool

	// Logger tells of an engine's choices for a module that change how
	// fast its tasks run (wasmtime's memory mode). An executor logs them
	// on its stderr, which its worker logs at debug. nil logs nothing.
	Logger *slog.Logger
}

// ErrInvalidRequest is wrapped by errors in a request itself (not the task).
var ErrInvalidRequest = errors.New("invalid request")

// validateRequest rejects what WASI cannot carry: NUL in args or env, '=' in
// an env key; and a request giving stdin both as bytes and as a file.
func validateRequest(req *Request) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", ErrInvalidRequest)
	}
	if req.StdinPath != "" && len(req.Stdin) > 0 {
		return fmt.Errorf("%w: both Stdin and StdinPath are set", ErrInvalidRequest)
	}
	if req.StdoutSpill < 0 || (req.StdoutPath != "" && req.StdoutPath == req.StdinPath) {
		return fmt.Errorf("%w: StdoutSpill %d, StdoutPath %q", ErrInvalidRequest, req.StdoutSpill, req.StdoutPath)
	}
	for _, a := range append([]string{req.Name}, req.Args...) {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: argument %q contains NUL", ErrInvalidRequest, a)
		}
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: environment variable %q", ErrInvalidRequest, k)
		}
	}
	return nil
}

// sortedEnv returns the environment in key order, so the task sees the same
// environ on every run (map order is random).
func sortedEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
