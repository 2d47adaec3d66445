package wasm

import "time"

// Defaults for a zero Limits field.
const (
	DefaultMemoryBytes = 256 << 20
	DefaultMaxOutput   = 16 << 20
	defaultName        = "task"
)

// Limits bound one run.
type Limits struct {
	MemoryBytes uint64        // cap on linear memory; 0 means 256 MiB
	Timeout     time.Duration // wall clock per run; 0 means none (Pool enforces it by killing the child)
	MaxOutput   int64         // cap on stdout and on stderr, each; 0 means 16 MiB
}

// memoryBytes is MemoryBytes with its default applied.
func (l Limits) memoryBytes() uint64 {
	if l.MemoryBytes == 0 {
		return DefaultMemoryBytes
	}
	return l.MemoryBytes
}

// maxOutput is MaxOutput with its default applied.
func (l Limits) maxOutput() int64 {
	if l.MaxOutput <= 0 {
		return DefaultMaxOutput
	}
	return l.MaxOutput
}

// Request is one run of a module.
type Request struct {
	ModuleHash string            // hex SHA-256 of the module bytes; the module is read from the ModuleDir
	Name       string            // argv[0]; "" means "task"
	Args       []string          // argv[1:]
	Env        map[string]string // given to the task sorted by key
	Stdin      []byte            // the task's stdin, in memory; see StdinPath
	// StdinPath, instead of Stdin, names a regular file whose contents are
	// the task's stdin: the engine opens it for the run and the task reads
	// it from disk as it goes, so an input of any size costs a small buffer,
	// not its size, and is never copied (through a Pool, the path travels to
	// the executor child, which opens it; a relative path is resolved
	// against the caller's working directory). The task sees exactly what
	// Stdin with the same bytes would give it. At most one of Stdin and
	// StdinPath may be set. The file must not change during the run; the
	// caller removes it afterwards. If it cannot be opened, the run fails
	// with an error wrapping ErrStdinFile (not a task failure).
	StdinPath string
	// StdoutPath, if set, is a file the task's stdout spills to once it is
	// over StdoutSpill bytes: from then on everything the task writes (the
	// first StdoutSpill bytes included) goes to the file as it is written,
	// not to memory, under the same MaxOutput cap, and the Result says so
	// (StdoutSpilled, with Stdout nil and the length in StdoutSize). So a
	// task's output costs memory only up to StdoutSpill, whatever its
	// size. The engine creates (or truncates) the file when it spills; the
	// caller removes it. Through a Pool the path travels to the executor
	// child, which writes it. A file that cannot be written fails the run
	// with an error wrapping ErrStdoutFile (not a task failure). At a
	// timeout the file may hold more than StdoutSize: read only that much.
	StdoutPath  string
	StdoutSpill int64
	Seed        uint64 // seeds the deterministic random source the task sees
	Limits      Limits

	// Engine picks the engine in a Pool: "wazero", "wasmer", or "auto"
	// (or "") to let the pool keep whichever runs this module faster. Every
	// engine gives the same bytes. An in-process Engine ignores it.
	Engine string

	measureCPU bool // a Pool wants Result.CPUTime (two system calls)
}

func (r *Request) argv0() string {
	if r.Name == "" {
		return defaultName
	}
	return r.Name
}

// Result is what a run produced. ExitCode is the code the module gave
// proc_exit, 0 if _start returned, and -1 if the module was stopped
// (trap, timeout, output or memory limit, crash).
type Result struct {
	ExitCode int
	Stdout   []byte        // what was written, up to the cap, also on error; nil if spilled
	Stderr   []byte        // likewise (never spilled)
	Duration time.Duration // time spent running the module (not queueing, not compiling)
	// ModuleTime is the part of Duration inside the module's _start: the
	// rest is the sandbox's own cost per task (instantiate, tear down).
	ModuleTime time.Duration
	// CPUTime is the CPU time the executor process spent on the task, on
	// all its threads: from the end of its previous task, if that one was
	// measured too, else from just before the engine ran it, to just
	// after. So what the executor does for a task besides the engine's run
	// counts (the pipe, its runtime's garbage collector, an engine's
	// finalizers), which Duration does not show. A Pool measures it only while its engine
	// choice for the module is still measuring ("auto"): otherwise, and
	// in-process and on Windows, it is 0.
	CPUTime time.Duration
	Engine  string // the engine that ran it: "wazero", "wasmtime" or "wasmer"
	// StdoutSize is how many bytes of stdout were kept; StdoutSpilled says
	// they are in the request's StdoutPath, not in Stdout.
	StdoutSize    int64
	StdoutSpilled bool
}
