package ledger

import (
	"fmt"
	"math"

	"github.com/peergrid/peergrid/tasks"
)

// task is one task's record, kept small because a ledger holds millions of
// them (issue 15): 80 bytes for the common case, against 208 when every
// field was a string, an int or a slice. State, engine and exit code are
// small integers converted at the accessors; the fields a plain success
// never sets (error, failed-on worker, stderr, stdout blob, cached origin)
// sit behind one pointer that is nil for it. Worker names are shared
// strings (the command's, or one per chunk on restore), not copies. The
// inline stdout lives in its chunk's arena (tasktable.go), the record
// holding only where: a finished task's few bytes of output cost those
// bytes, not a slice header and an allocation of their own.
//
// Snapshots and StateHash see the record as taskRecord, the JSON form the
// ledger always wrote, so the hash means the same across versions.
type task struct {
	Expiry   int64 // of the lease, while leased (tasks without replicas)
	Duration int64 // run time of the accepted attempt, ns
	// seed is the task's tasks.Seed (its content hash's first 8 bytes)
	// once flags has hasSeed: kept from its first grant so the leader
	// hashes a task's content once, not for its assignment and again for
	// its result-cache key (8 bytes a task, BENCHMARKS.md issue 15). A
	// pure function of the job's spec, so derived: never serialized, and
	// a restored task computes it again when it needs it.
	seed   uint64
	out    outSpan // the inline stdout, in the chunk's arena
	Worker string  // of the lease or the accepted result
	rare   *taskRare
	// Rep holds the replicas of a task of a job with replicas, from its
	// first lease (replicas.go); nil for every other task, so a job
	// without replicas pays 8 bytes a task for it.
	Rep      *replicaSet
	attempts uint32 // saturating
	late     uint32 // reports ignored because they came too late; saturating
	exit     int32  // the exit code when flags has hasExit (and not bigExit)
	st       uint8  // a taskState
	engine   uint8  // 0 none, i+1 for tasks.Engines[i], engineOther for rare.engine
	flags    uint8
}

const (
	hasExit uint8 = 1 << iota // the task has an exit code
	bigExit                   // it does not fit an int32: rare.bigExit holds it
	hasSeed                   // seed holds the task's content seed
)

// engineOther marks an engine name no build of the ledger knows (a report
// may name any): the name is kept in rare.engine.
const engineOther = math.MaxUint8

// taskRare holds the fields a plain successful task never sets. It is
// never changed in place once a task points to it: a snapshot may share
// it (chunks are copied on write, shallowly), so setters copy it.
type taskRare struct {
	errorKind string
	errorText string
	failedOn  string // worker of the last failed attempt
	stderr    []byte
	// stdout is an inline stdout too long for the chunk's arena
	// (maxArenaOutput); nil for the others.
	stdout    []byte
	stdoutRef string // stdout as an erasure-coded blob
	// cached names the task whose result this one took at submit (the
	// result cache); nil for a task that ran.
	cached  *cacheOrigin
	engine  string // when the task's engine is engineOther
	bigExit int    // when the task's flags have bigExit
}

func (r *taskRare) isZero() bool {
	return r.errorKind == "" && r.errorText == "" && r.failedOn == "" && len(r.stderr) == 0 &&
		r.stdout == nil && r.stdoutRef == "" && r.cached == nil && r.engine == "" && r.bigExit == 0
}

// taskStates are the states by their compact code: the zero code is
// queued, so a new chunk needs no initialisation.
var taskStates = [...]tasks.TaskState{tasks.TaskQueued, tasks.TaskLeased, tasks.TaskDone, tasks.TaskFailed}

func (t *task) state() tasks.TaskState { return taskStates[t.st] }

func (t *task) setState(s tasks.TaskState) {
	code, ok := stateCode(s)
	if !ok {
		panic(fmt.Sprintf("ledger: task state %q", s)) // the ledger sets only its own constants
	}
	t.st = code
}

func stateCode(s tasks.TaskState) (uint8, bool) {
	for i, known := range taskStates {
		if s == known {
			return uint8(i), true
		}
	}
	return 0, false
}

func (t *task) attemptCount() int { return int(t.attempts) }

// addAttempt counts one more attempt (d = +1) or takes one back (d = -1),
// saturating: 4 billion attempts is beyond any retries a spec allows.
func (t *task) addAttempt(d int) { t.attempts = saturate32(int64(t.attempts) + int64(d)) }

func (t *task) lateCount() int { return int(t.late) }

func (t *task) addLate() { t.late = saturate32(int64(t.late) + 1) }

func saturate32(n int64) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

// exitCode is the task's exit code and whether it has one.
func (t *task) exitCode() (int, bool) {
	switch {
	case t.flags&hasExit == 0:
		return 0, false
	case t.flags&bigExit != 0:
		return t.rare.bigExit, true
	}
	return int(t.exit), true
}

// exitCodePtr is the exit code as the API and snapshots give it, a fresh
// pointer (nil for none).
func (t *task) exitCodePtr() *int {
	if code, ok := t.exitCode(); ok {
		return &code
	}
	return nil
}

// setExitCode records code; one outside int32 (a worker may report any
// int) is kept whole in the rare fields rather than cut.
func (t *task) setExitCode(code int) {
	fits := code >= math.MinInt32 && code <= math.MaxInt32
	if fits && t.flags&bigExit == 0 { // the common case allocates nothing
		t.exit, t.flags = int32(code), t.flags|hasExit
		return
	}
	r := t.rareCopy()
	r.bigExit = 0
	t.exit, t.flags = 0, t.flags&^bigExit|hasExit
	if fits {
		t.exit = int32(code)
	} else {
		r.bigExit, t.flags = code, t.flags|bigExit
	}
	t.setRare(r)
}

// setExitCodePtr sets the exit code from its pointer form (nil clears it).
func (t *task) setExitCodePtr(code *int) {
	if code == nil {
		t.clearExitCode()
		return
	}
	t.setExitCode(*code)
}

func (t *task) clearExitCode() {
	if t.flags&bigExit != 0 {
		r := t.rareCopy()
		r.bigExit = 0
		t.setRare(r)
	}
	t.exit, t.flags = 0, t.flags&^(hasExit|bigExit)
}

// engineName is the engine of the accepted attempt, "" for none.
func (t *task) engineName() string {
	switch {
	case t.engine == 0:
		return ""
	case t.engine == engineOther:
		return t.rare.engine
	}
	return tasks.Engines[t.engine-1]
}

func (t *task) setEngine(name string) {
	code := engineCode(name)
	if code == engineOther || t.engine == engineOther {
		r := t.rareCopy()
		r.engine = ""
		if code == engineOther {
			r.engine = name
		}
		t.setRare(r)
	}
	t.engine = code
}

func engineCode(name string) uint8 {
	if name == "" {
		return 0
	}
	for i, e := range tasks.Engines {
		if name == e {
			return uint8(i + 1)
		}
	}
	return engineOther
}

// The rare fields' readers: zero values when the task has none.

func (t *task) errorKind() string {
	if t.rare == nil {
		return ""
	}
	return t.rare.errorKind
}

func (t *task) errorText() string {
	if t.rare == nil {
		return ""
	}
	return t.rare.errorText
}

func (t *task) failedOn() string {
	if t.rare == nil {
		return ""
	}
	return t.rare.failedOn
}

func (t *task) stderr() []byte {
	if t.rare == nil {
		return nil
	}
	return t.rare.stderr
}

func (t *task) stdoutRef() string {
	if t.rare == nil {
		return ""
	}
	return t.rare.stdoutRef
}

func (t *task) cached() *cacheOrigin {
	if t.rare == nil {
		return nil
	}
	return t.rare.cached
}

// The rare fields' writers: each replaces the record it points to, and
// allocates nothing when a task without rare fields stays without.

func (t *task) setError(kind, text string) {
	if t.rare == nil && kind == "" && text == "" {
		return
	}
	r := t.rareCopy()
	r.errorKind, r.errorText = kind, text
	t.setRare(r)
}

func (t *task) setFailedOn(worker string) {
	if t.rare == nil && worker == "" {
		return
	}
	r := t.rareCopy()
	r.failedOn = worker
	t.setRare(r)
}

// setOutputBesideStdout records an accepted result's outputs but its
// inline stdout, which is the chunk's to place (taskTable.setOutput).
func (t *task) setOutputBesideStdout(stderr []byte, stdoutRef, engine string) {
	if t.rare != nil || len(stderr) > 0 || stdoutRef != "" {
		r := t.rareCopy()
		r.stderr, r.stdoutRef = stderr, stdoutRef
		t.setRare(r)
	}
	t.setEngine(engine)
}

func (t *task) setCached(c *cacheOrigin) {
	if t.rare == nil && c == nil {
		return
	}
	r := t.rareCopy()
	r.cached = c
	t.setRare(r)
}

// rareCopy is a copy of the rare fields to change (zero if none).
func (t *task) rareCopy() *taskRare {
	if t.rare == nil {
		return &taskRare{}
	}
	c := *t.rare
	return &c
}

// setRare points the task to r, or to nothing when r holds nothing, so a
// plain success pays 8 bytes for the rare fields.
func (t *task) setRare(r *taskRare) {
	if r.isZero() {
		r = nil
	}
	t.rare = r
}

// taskRecord is a task as snapshots encode it: the JSON form of the
// ledger's task before the compact record, field for field, so old
// snapshots restore and StateHash hashes the same bytes as before.
type taskRecord struct {
	State     tasks.TaskState `json:"s"`
	Attempts  int             `json:"a,omitempty"`
	Worker    string          `json:"w,omitempty"`
	Expiry    int64           `json:"x,omitempty"`
	ExitCode  *int            `json:"c,omitempty"`
	ErrorKind string          `json:"k,omitempty"`
	Error     string          `json:"e,omitempty"`
	Duration  int64           `json:"d,omitempty"`
	Stdout    []byte          `json:"o,omitempty"`
	Stderr    []byte          `json:"r,omitempty"`
	Late      int             `json:"l,omitempty"`
	FailedOn  string          `json:"f,omitempty"`
	Engine    string          `json:"g,omitempty"`
	StdoutRef string          `json:"b,omitempty"`
	Cached    *cacheOrigin    `json:"h,omitempty"`
	Rep       *replicaSet     `json:"p,omitempty"`
}

// setLongStdout keeps a stdout too long for the arena in the rare fields
// (nil drops it).
func (t *task) setLongStdout(p []byte) {
	if t.rare == nil && p == nil {
		return
	}
	r := t.rareCopy()
	r.stdout = p
	t.setRare(r)
}

// record is t in its snapshot form, with stdout its inline stdout
// (taskTable.stdout).
func (t *task) record(stdout []byte) taskRecord {
	rec := taskRecord{
		State: t.state(), Attempts: t.attemptCount(), Worker: t.Worker, Expiry: t.Expiry, ExitCode: t.exitCodePtr(),
		Duration: t.Duration, Stdout: stdout, Late: t.lateCount(), Engine: t.engineName(), Rep: t.Rep,
	}
	if r := t.rare; r != nil {
		rec.ErrorKind, rec.Error, rec.FailedOn = r.errorKind, r.errorText, r.failedOn
		rec.Stderr, rec.StdoutRef, rec.Cached = r.stderr, r.stdoutRef, r.cached
	}
	return rec
}

// errBadTaskRecord is a snapshot's task that no ledger could have written.
var errBadTaskRecord = fmt.Errorf("bad task record")

// fromRecord is the task a snapshot record describes, but for its inline
// stdout (rec.Stdout), which taskTable.appendTask places.
func fromRecord(rec *taskRecord) (task, error) {
	code, ok := stateCode(rec.State)
	if !ok {
		return task{}, fmt.Errorf("%w: state %q", errBadTaskRecord, rec.State)
	}
	if rec.Attempts < 0 || rec.Late < 0 {
		return task{}, fmt.Errorf("%w: %d attempts, %d late", errBadTaskRecord, rec.Attempts, rec.Late)
	}
	t := task{Expiry: rec.Expiry, Duration: rec.Duration, Worker: rec.Worker, Rep: rec.Rep,
		attempts: saturate32(int64(rec.Attempts)), late: saturate32(int64(rec.Late)), st: code}
	t.setExitCodePtr(rec.ExitCode)
	t.setEngine(rec.Engine)
	if rec.ErrorKind != "" || rec.Error != "" || rec.FailedOn != "" || len(rec.Stderr) > 0 || rec.StdoutRef != "" || rec.Cached != nil {
		r := t.rareCopy()
		r.errorKind, r.errorText, r.failedOn = rec.ErrorKind, rec.Error, rec.FailedOn
		r.stderr, r.stdoutRef, r.cached = rec.Stderr, rec.StdoutRef, rec.Cached
		t.setRare(r)
	}
	return t, nil
}
