package tasks

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TaskState is where one task is in its life:
// queued -> leased -> done | failed (a lease that lapses returns it to queued).
type TaskState string

const (
	TaskQueued TaskState = "queued"
	TaskLeased TaskState = "leased"
	TaskDone   TaskState = "done"
	TaskFailed TaskState = "failed"
)

// JobState summarises a job's tasks.
type JobState string

const (
	JobQueued    JobState = "queued"    // no task has been leased yet
	JobRunning   JobState = "running"   // some task leased or finished, not all finished
	JobComplete  JobState = "complete"  // every task done
	JobFailed    JobState = "failed"    // every task finished and at least one failed
	JobCancelled JobState = "cancelled" // cancelled by a user; unfinished tasks will not run
)

// Defaults for a job file's optional keys. They are what a BOINC or HTCondor
// user would expect of a batch task: minutes of wall clock, a few hundred MiB.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultMemory    = 256 << 20
	DefaultMaxOutput = 16 << 20
	DefaultRetries   = 2
	// MaxMemory is the most a wasm32 module can address.
	MaxMemory = 4 << 30
	// MaxTasks bounds one job, so a typo cannot queue billions of tasks.
	MaxTasks = 10_000_000
	// MaxOutput bounds max_output: a worker holds a task's stdout (and its
	// stderr) in memory until the run ends, so a volunteer's machine must
	// not be asked for more. Larger results belong in several tasks.
	MaxOutput = 1 << 30
	// DefaultMaxTimeout is the longest timeout a credential may give a task
	// unless an operator allowed it more (a per-credential quota, up to
	// TimeoutLimit): a day of wall clock per attempt.
	DefaultMaxTimeout = 24 * time.Hour
	// TimeoutLimit is the longest timeout any job may ask for, whatever its
	// credential: far below what would overflow a lease expiry.
	TimeoutLimit = 30 * 24 * time.Hour
	// MaxRetries bounds retries so a typo cannot make a broken task run
	// (and fail) for ever.
	MaxRetries = 100
	// MinPriority and MaxPriority bound a job's priority; a credential's
	// quota may bound it lower (submitters: 0 unless an operator allows more).
	MinPriority = -100
	MaxPriority = 100
	// MaxNameBytes bounds a job's name.
	MaxNameBytes = 200
	// MaxArgs and MaxArgEnvBytes bound a job's argument list and the bytes
	// of its args and environment together: the leader expands them for
	// every task it grants, and every server keeps them.
	MaxArgs        = 1024
	MaxArgEnvBytes = 64 << 10
	// MaxShards bounds k+m, as the erasure coder does.
	MaxShards = 256
)

// Input is one task input file, named by the SHA-256 of its bytes.
type Input struct {
	Name string `json:"name"` // the file's base name, for {input}
	Hash string `json:"hash"` // hex SHA-256 of the bytes
	Size int64  `json:"size"`
}

// JobSpec is a job as the ledger keeps it: everything a worker needs to run
// any of its tasks, with the module and inputs named by hash. It is made from a
// job file by the client and validated again by the server.
type JobSpec struct {
	Name       string            `json:"name"`
	ModuleHash string            `json:"module"`
	Args       []string          `json:"args,omitempty"` // templates with {index} {count} {input}
	Env        map[string]string `json:"env,omitempty"`
	Tasks      int               `json:"tasks"`
	Inputs     []Input           `json:"inputs,omitempty"` // one per task when set
	Timeout    time.Duration     `json:"timeout"`
	Memory     uint64            `json:"memory"`
	MaxOutput  uint64            `json:"max_output"`
	Retries    int               `json:"retries"`
	Priority   int               `json:"priority"`
	// Engine picks the WebAssembly engine: EngineAuto lets each worker start
	// a module on the engine expected fastest for long work and keep the
	// one that measures fastest (outputs are identical on every engine).
	Engine string `json:"engine,omitempty"`
	// DataShards and ParityShards override the cluster's erasure coding of
	// the job's large inputs and results (0: the cluster's).
	DataShards   int `json:"k,omitempty"`
	ParityShards int `json:"m,omitempty"`
	// Seed changes the random numbers every task sees (see tasks.Seed); 0,
	// the default, is a seed like any other, so the same job file gives
	// the same numbers on every submit.
	Seed uint64 `json:"seed,omitempty"`
	// Image says the job makes a picture: task i writes tile i, row by
	// row, as a binary PGM or PPM, and the dashboard stitches the tiles.
	// nil (every job before it) for none.
	Image *ImageTiles `json:"image,omitempty"`
	// NoCache (job file `cache = false`) runs every task even when the
	// result cache holds its content's result; its results still fill the
	// cache. Not part of a task's content (tasks.ContentHash).
	NoCache bool `json:"no_cache,omitempty"`
	// Replicas, Quorum and MaxReplicas ask for redundant computing (job
	// file `replicas`, `quorum`, `max_replicas`): each task runs on
	// Replicas distinct workers and is done when Quorum result hashes
	// agree; disagreement runs another replica, up to MaxReplicas, then
	// the task fails as ErrNoQuorum. Zero means the default (see
	// Replication). Adaptive (`replicas = "adaptive"`) checks a task with
	// a second replica only with a probability that falls with the first
	// worker's record. Not part of a task's content.
	Replicas    int  `json:"replicas,omitempty"`
	Quorum      int  `json:"quorum,omitempty"`
	MaxReplicas int  `json:"max_replicas,omitempty"`
	Adaptive    bool `json:"adaptive,omitempty"`
}

// Bounds of the replication fields.
const (
	MaxReplicasPerTask = 16 // replicas = R: 1..16
	MaxReplicasLimit   = 32 // max_replicas: R..32
	// AdaptiveQuorum is the quorum of a task adaptive replication checks.
	AdaptiveQuorum = 2
	// DefaultAdaptiveMaxReplicas is max_replicas of an adaptive job.
	DefaultAdaptiveMaxReplicas = 4
)

// ErrNoQuorum is the error kind of a task that used max_replicas votes
// without Quorum of them agreeing.
const ErrNoQuorum = "no_quorum"

// Replicated reports whether the job asks for more than one result per
// task, at least sometimes (replicas > 1 or adaptive). A job that does not
// runs exactly as before replicas existed.
func (s *JobSpec) Replicated() bool { return s.Adaptive || s.Replicas > 1 }

// Replication is the job's replicas, quorum and max_replicas with the
// defaults filled in: R=1, Q=1 when nothing is set; replicas = R alone
// asks for a majority (Q = R/2+1); max_replicas defaults to R+2. For an
// adaptive job it is the plan of a checked task: 2 replicas, quorum 2,
// max_replicas 4 by default (an unchecked task takes one result).
func (s *JobSpec) Replication() (replicas, quorum, maxReplicas int) {
	replicas, quorum, maxReplicas = max(s.Replicas, 1), s.Quorum, s.MaxReplicas
	if s.Adaptive {
		replicas, quorum = AdaptiveQuorum, AdaptiveQuorum
	}
	if quorum == 0 {
		quorum = replicas/2 + 1
	}
	if maxReplicas == 0 {
		maxReplicas = replicas + 2
		if s.Adaptive {
			maxReplicas = DefaultAdaptiveMaxReplicas
		}
	}
	return replicas, quorum, maxReplicas
}

func (s *JobSpec) validateReplication() error {
	switch {
	case s.Adaptive && (s.Replicas != 0 || s.Quorum != 0):
		return invalid(`replicas = "adaptive" takes no quorum (a checked task needs %d agreeing results)`, AdaptiveQuorum)
	case s.Replicas < 0 || s.Replicas > MaxReplicasPerTask:
		return invalid("replicas = %d, want 1..%d or \"adaptive\"", s.Replicas, MaxReplicasPerTask)
	}
	r, q, m := s.Replication()
	switch {
	case s.Quorum < 0 || q > r:
		return invalid("quorum = %d, want 1..%d (replicas)", s.Quorum, r)
	case s.MaxReplicas != 0 && (m < r || m > MaxReplicasLimit):
		return invalid("max_replicas = %d, want %d..%d (replicas..%d)", s.MaxReplicas, r, MaxReplicasLimit, MaxReplicasLimit)
	}
	return nil
}

// ImageTiles is the tile grid of a job that makes an image: Cols*Rows
// tiles, one per task, tile i at column i%Cols and row i/Cols.
type ImageTiles struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// MaxImageTiles bounds an image job's tiles, which the dashboard reads
// all at once to stitch them.
const MaxImageTiles = 4096

// Check says what is wrong with an image's tile grid for a job of n tasks.
func (im *ImageTiles) Check(n int) error {
	switch {
	case im.Cols < 1 || im.Rows < 1 || im.Cols*im.Rows > MaxImageTiles:
		return fmt.Errorf("image cols = %d, rows = %d: want both >= 1 and at most %d tiles", im.Cols, im.Rows, MaxImageTiles)
	case im.Cols*im.Rows != n:
		return fmt.Errorf("image cols = %d, rows = %d makes %d tiles for %d tasks: want one tile per task", im.Cols, im.Rows, im.Cols*im.Rows, n)
	}
	return nil
}

// WebAssembly engines a job may ask for.
const (
	EngineAuto     = "auto"
	EngineWazero   = "wazero"
	EngineWasmer   = "wasmer"
	EngineWasmtime = "wasmtime"
)

// Engines lists the valid values of JobSpec.Engine.
var Engines = []string{EngineAuto, EngineWazero, EngineWasmtime, EngineWasmer}

// NeedsEngine is the engine a worker must have to run the job's tasks, ""
// when any will do.
func (s *JobSpec) NeedsEngine() string {
	if s.Engine == EngineAuto {
		return ""
	}
	return s.Engine
}

// ErrInvalidSpec is wrapped by every JobSpec.Validate failure.
var ErrInvalidSpec = errors.New("invalid job")

// Validate checks the bounds a server enforces whatever the client did:
// every numeric field within its documented range, each error naming the
// field and the range. A credential's quotas (scheduler/ledger) may narrow
// some of them further (tasks, priority, timeout).
func (s *JobSpec) Validate() error {
	if err := s.validateNumbers(); err != nil {
		return err
	}
	if err := s.validateText(); err != nil {
		return err
	}
	if err := s.validateReplication(); err != nil {
		return err
	}
	for i, in := range s.Inputs {
		if !isHexHash(in.Hash) {
			return invalid("input %d (%s): hash %q is not a hex SHA-256", i, in.Name, in.Hash)
		}
		if in.Size < 0 {
			return invalid("input %d (%s): size = %d, want 0 or more", i, in.Name, in.Size)
		}
	}
	return nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, a...))
}

func (s *JobSpec) validateNumbers() error {
	switch {
	case s.Tasks < 1 || s.Tasks > MaxTasks:
		return invalid("tasks = %d, want 1..%d", s.Tasks, MaxTasks)
	case len(s.Inputs) != 0 && len(s.Inputs) != s.Tasks:
		return invalid("%d inputs for %d tasks", len(s.Inputs), s.Tasks)
	case s.Timeout <= 0 || s.Timeout > TimeoutLimit:
		return invalid("timeout = %v, want more than 0 and at most %v (%v unless an operator raised the credential's max_timeout)",
			s.Timeout, TimeoutLimit, DefaultMaxTimeout)
	case s.Memory < MinMemory || s.Memory > MaxMemory:
		return invalid("memory = %d bytes, want %d..%d (64KiB..4GiB)", s.Memory, uint64(MinMemory), uint64(MaxMemory))
	case s.MaxOutput == 0 || s.MaxOutput > MaxOutput:
		return invalid("max_output = %d bytes, want 1..%d (1GiB)", s.MaxOutput, uint64(MaxOutput))
	case s.Retries < 0 || s.Retries > MaxRetries:
		return invalid("retries = %d, want 0..%d", s.Retries, MaxRetries)
	case s.Priority < MinPriority || s.Priority > MaxPriority:
		return invalid("priority = %d, want %d..%d", s.Priority, MinPriority, MaxPriority)
	case s.DataShards < 0 || s.ParityShards < 0 || s.DataShards+s.ParityShards > MaxShards || s.ParityShards > 0 && s.DataShards == 0:
		return invalid("erasure k = %d, m = %d: want k >= 1, m >= 0, k+m <= %d (or both 0: the cluster's)", s.DataShards, s.ParityShards, MaxShards)
	}
	if s.Image != nil {
		if err := s.Image.Check(s.Tasks); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	return nil
}

func (s *JobSpec) validateText() error {
	switch {
	case strings.TrimSpace(s.Name) == "":
		return invalid("name is empty")
	case len(s.Name) > MaxNameBytes:
		return invalid("name is %d bytes, want at most %d", len(s.Name), MaxNameBytes)
	case !isHexHash(s.ModuleHash):
		return invalid("module hash %q is not a hex SHA-256", s.ModuleHash)
	case s.Engine != "" && !slices.Contains(Engines, s.Engine):
		return invalid("engine %q, want one of %s", s.Engine, strings.Join(Engines, ", "))
	case len(s.Args) > MaxArgs:
		return invalid("%d args, want at most %d", len(s.Args), MaxArgs)
	}
	if n := argEnvBytes(s.Args, s.Env); n > MaxArgEnvBytes {
		return invalid("args and env hold %d bytes, want at most %d (64KiB)", n, MaxArgEnvBytes)
	}
	return nil
}

func argEnvBytes(args []string, env map[string]string) int {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	for k, v := range env {
		n += len(k) + len(v)
	}
	return n
}

// TaskArgs is the argument list of task index, placeholders expanded.
func (s *JobSpec) TaskArgs(index int) []string {
	input := ""
	if index < len(s.Inputs) {
		input = s.Inputs[index].Name
	}
	return ExpandArgs(s.Args, index, s.Tasks, input)
}

// ExpandArgs replaces {index} (0-based), {count} and {input} (the input file's
// base name, empty without inputs) in each argument.
func ExpandArgs(args []string, index, count int, input string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expandArg(a, index, count, input)
	}
	return out
}

// expandArg does what strings.NewReplacer("{index}", ..., "{count}", ...,
// "{input}", ...).Replace(a) does, without building a replacer per task: the
// leader expands the args of every task it grants.
func expandArg(a string, index, count int, input string) string {
	if strings.IndexByte(a, '{') < 0 {
		return a
	}
	var b strings.Builder
	for {
		k := strings.IndexByte(a, '{')
		if k < 0 {
			b.WriteString(a)
			return b.String()
		}
		b.WriteString(a[:k])
		a = a[k:]
		switch {
		case strings.HasPrefix(a, "{index}"):
			b.WriteString(strconv.Itoa(index))
			a = a[len("{index}"):]
		case strings.HasPrefix(a, "{count}"):
			b.WriteString(strconv.Itoa(count))
			a = a[len("{count}"):]
		case strings.HasPrefix(a, "{input}"):
			b.WriteString(input)
			a = a[len("{input}"):]
		default:
			b.WriteByte('{')
			a = a[1:]
		}
	}
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Finished reports whether a job in this state will not change any more.
func (s JobState) Finished() bool {
	return s == JobComplete || s == JobFailed || s == JobCancelled
}
