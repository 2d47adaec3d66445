package wasm

import (
	"errors"
	"fmt"
)

// Kind names how a task failed. It is stable text: results and the ledger
// keep it.
type Kind string

// The failure kinds.
const (
	KindTrap          Kind = "trap"           // the module trapped (unreachable, bad access, ...)
	KindExit          Kind = "exit"           // the module exited with a non-zero code
	KindTimeout       Kind = "timeout"        // the module ran past Limits.Timeout
	KindMemory        Kind = "memory"         // the module needed more than Limits.MemoryBytes, or its executor more than its memory box
	KindOutput        Kind = "output"         // the module wrote more than Limits.MaxOutput
	KindInvalidModule Kind = "invalid_module" // the bytes are not a module that can run here
	KindCrash         Kind = "crash"          // the executor process died while running it
)

// Sentinels, one per Kind: every *TaskError unwraps to its kind's sentinel,
// so errors.Is(err, ErrTimeout) works through any wrapping.
var (
	ErrTrap          = errors.New("task trapped")
	ErrExit          = errors.New("task exited with a non-zero code")
	ErrTimeout       = errors.New("task timed out")
	ErrMemory        = errors.New("task exceeded its memory limit")
	ErrOutput        = errors.New("task exceeded its output limit")
	ErrInvalidModule = errors.New("invalid WebAssembly module")
	ErrCrash         = errors.New("executor crashed")
)

// Errors that are not the task's fault.
var (
	ErrModuleNotFound = errors.New("module not found")
	ErrModuleCorrupt  = errors.New("module file does not match its hash")
	ErrPoolClosed     = errors.New("executor pool is closed")
	// ErrStdoutFile is wrapped when the file stdout spills to cannot be
	// written (Request.StdoutPath): a full disk is not the task's fault.
	ErrStdoutFile = errors.New("cannot write the stdout file")
	ErrExecutor   = errors.New("executor failed")
)

var kindSentinels = map[Kind]error{
	KindTrap: ErrTrap, KindExit: ErrExit, KindTimeout: ErrTimeout, KindMemory: ErrMemory,
	KindOutput: ErrOutput, KindInvalidModule: ErrInvalidModule, KindCrash: ErrCrash,
}

// TaskError is how a task failed.
type TaskError struct {
	Kind Kind
	Msg  string // what happened, for people; does not repeat the kind
}

func (e *TaskError) Error() string { return fmt.Sprintf("%s: %s", e.Kind, e.Msg) }

// Unwrap returns the kind's sentinel (nil for an unknown kind).
func (e *TaskError) Unwrap() error { return kindSentinels[e.Kind] }

// KindOf returns the Kind of a task failure anywhere in err's chain, and ""
// for nil or for errors that are not task failures.
func KindOf(err error) Kind {
	var te *TaskError
	if errors.As(err, &te) {
		return te.Kind
	}
	return ""
}

func taskErrorf(kind Kind, format string, args ...any) *TaskError {
	return &TaskError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
