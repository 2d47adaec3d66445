package ledger

import (
	"bytes"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/peergrid/peergrid/tasks"
)

// TestTask_RecordStaysSmall: the record a plain finished task costs. A
// field added to it should be a conscious choice (issue 15).
func TestTask_RecordStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(task{}); size > 80 {
		t.Fatalf("task record is %d bytes, want at most 80", size)
	}
	var gen uint64
	tt := newTaskTable(1, &gen)
	tk := tt.setOutput(0, []byte("1\n"), nil, "", tasks.EngineWasmtime)
	tk.setState(tasks.TaskDone)
	tk.setExitCode(0)
	tk.setError("", "")
	if tk.rare != nil {
		t.Fatalf("a plain success holds rare fields: %+v", *tk.rare)
	}
}

// TestTask_PlainSuccessAllocatesNothing: recording a plain success (the
// hot path of every report) allocates no rare record, not even to drop it.
func TestTask_PlainSuccessAllocatesNothing(t *testing.T) {
	var tk task
	allocs := testing.AllocsPerRun(100, func() {
		tk.setState(tasks.TaskLeased)
		tk.addAttempt(+1)
		tk.setExitCode(0)
		tk.setError("", "")
		tk.setOutputBesideStdout(nil, "", tasks.EngineWasmtime)
		tk.setState(tasks.TaskDone)
		_ = tk.failedOn() + tk.errorKind() + tk.stdoutRef()
	})
	if allocs != 0 || tk.rare != nil {
		t.Fatalf("a plain success allocates %.0f times, rare fields %+v", allocs, tk.rare)
	}
}

func TestTask_AttemptsAndLateSaturate(t *testing.T) {
	var tk task
	tk.addAttempt(-1)
	if n := tk.attemptCount(); n != 0 {
		t.Fatalf("attempts after taking one back from none: %d, want 0", n)
	}
	tk.attempts = math.MaxUint32 - 1
	tk.addAttempt(+1)
	tk.addAttempt(+1)
	if n := tk.attemptCount(); n != math.MaxUint32 {
		t.Fatalf("attempts past the top: %d, want %d", n, uint32(math.MaxUint32))
	}
	tk.addAttempt(-1)
	if n := tk.attemptCount(); n != math.MaxUint32-1 {
		t.Fatalf("attempts after taking one back: %d, want %d", n, uint32(math.MaxUint32-1))
	}
	tk.late = math.MaxUint32
	tk.addLate()
	if n := tk.lateCount(); n != math.MaxUint32 {
		t.Fatalf("late past the top: %d", n)
	}
}

// TestTask_ExitCodesKeepEveryValue: an exit code is kept whole, small,
// above 255, negative, and beyond int32 (a worker may report any int);
// only the last needs the rare fields.
func TestTask_ExitCodesKeepEveryValue(t *testing.T) {
	for _, code := range []int{0, 1, 255, 256, 300, -1, -7, math.MaxInt32, math.MinInt32,
		math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxInt64, math.MinInt64} {
		var tk task
		tk.setExitCode(math.MaxInt64) // replaced, not mixed in
		tk.setExitCode(code)
		got, ok := tk.exitCode()
		if !ok || got != code || *tk.exitCodePtr() != code {
			t.Errorf("exit code %d: got %d, %v", code, got, ok)
		}
		fits := code >= math.MinInt32 && code <= math.MaxInt32
		if (tk.rare == nil) != fits {
			t.Errorf("exit code %d: rare fields %+v", code, tk.rare)
		}
		tk.clearExitCode()
		if _, ok := tk.exitCode(); ok || tk.exitCodePtr() != nil || tk.rare != nil {
			t.Errorf("exit code %d cleared: still %v, rare %+v", code, tk.exitCodePtr(), tk.rare)
		}
	}
	var none task
	if _, ok := none.exitCode(); ok {
		t.Error("a task that never ran has an exit code")
	}
}

func TestTask_EngineNames(t *testing.T) {
	for _, name := range append([]string{"", "quickjs-9"}, tasks.Engines...) {
		var tk task
		tk.setEngine("another-engine")
		tk.setEngine(name)
		if got := tk.engineName(); got != name {
			t.Errorf("engine %q: got %q", name, got)
		}
		if known := name == "" || engineCode(name) != engineOther; known != (tk.rare == nil) {
			t.Errorf("engine %q: rare fields %+v", name, tk.rare)
		}
	}
}

// TestTask_RareFieldsAreNeverChangedInPlace: a snapshot shares the rare
// record with the live task (chunks are copied shallowly), so a change
// after the snapshot must leave the snapshot's view as it was.
func TestTask_RareFieldsAreNeverChangedInPlace(t *testing.T) {
	var live task
	live.setError("trap", "unreachable")
	live.setFailedOn("w1")
	frozen := live // what a snapshot's chunk copy holds
	live.setError("timeout", "too slow")
	live.setFailedOn("w2")
	live.setOutputBesideStdout([]byte("err"), "ref", "quickjs-9")
	live.setExitCode(math.MaxInt64)
	live.setCached(&cacheOrigin{Job: "a"})
	if frozen.errorKind() != "trap" || frozen.errorText() != "unreachable" || frozen.failedOn() != "w1" ||
		frozen.stderr() != nil || frozen.stdoutRef() != "" || frozen.cached() != nil {
		t.Fatalf("the snapshot's task changed under it: %+v", frozen.record(nil))
	}
}

// TestSnapshot_TaskWithEveryFieldRoundTrips: a task with every field set,
// rare ones included, comes back from a snapshot field for field.
func TestSnapshot_TaskWithEveryFieldRoundTrips(t *testing.T) {
	a := newApplier(t)
	buildTaskZoo(a)
	var want taskRecord
	a.fsm.View(func(l *Ledger) {
		tt := &l.jobs["plain"].Tasks
		tk := tt.setOutput(5, []byte("out"), []byte("err"), tt.at(5).stdoutRef(), "quickjs-9") // leased, retried after a trap
		tk.setExitCode(math.MinInt64)
		tk.setCached(&cacheOrigin{Job: "elsewhere", Index: 3, Agreed: 2})
		tk.Duration = 42
		tk.addLate()
		want = tt.record(5)
	})
	for name, v := range map[string]any{"stdout": want.Stdout, "error kind": want.ErrorKind, "error": want.Error, "failed on": want.FailedOn,
		"stderr": want.Stderr, "worker": want.Worker, "expiry": want.Expiry, "late": want.Late, "cached": want.Cached} {
		if reflect.ValueOf(v).IsZero() {
			t.Fatalf("the task's %s is not set: the test no longer covers it", name)
		}
	}
	restored := snapshotInto(t, a.fsm)
	var got taskRecord
	restored.View(func(l *Ledger) { got = l.jobs["plain"].Tasks.record(5) })
	if g, w := mustJSON(got), mustJSON(want); !bytes.Equal(g, w) {
		t.Fatalf("restored task\n%s\nwant\n%s", g, w)
	}
}

// TestSnapshot_OldTaskRecordsRestore: a snapshot written by the ledger
// before the compact record (testdata, from buildTaskZoo's log) restores,
// hashes as it did then, and the same log applied now hashes the same:
// StateHash means the same on servers of either version.
func TestSnapshot_OldTaskRecordsRestore(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-v1-tasks.bin")
	if err != nil {
		t.Fatal(err)
	}
	wantHash, err := os.ReadFile("testdata/snapshot-v1-tasks.hash")
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(t)
	buildTaskZoo(a)
	if got := a.fsm.StateHash(); got != strings.TrimSpace(string(wantHash)) {
		t.Fatalf("the zoo's log hashes %s now, %s with the old record", got, wantHash)
	}
	restored := NewFSM()
	if err := restored.Restore(bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if got := restored.StateHash(); got != strings.TrimSpace(string(wantHash)) {
		t.Fatalf("the old snapshot hashes %s restored, %s when written", got, wantHash)
	}
	a.fsm = restored
	a.checkIndexes()
	var done int
	restored.View(func(l *Ledger) {
		js, _ := l.JobStatus("plain")
		for i, code := range []int{0, 300, -7, math.MaxInt32 + 5, math.MinInt32 - 5} {
			if ts := js.TaskStats[i]; ts.ExitCode == nil || *ts.ExitCode != code {
				t.Errorf("task %d exit code %v, want %d", i, ts.ExitCode, code)
			}
		}
		if ts := js.TaskStats[3]; ts.Engine != "quickjs-9" {
			t.Errorf("task 3 engine %q", ts.Engine)
		}
		if ts := js.TaskStats[0]; ts.Ignored != 1 || ts.Engine != tasks.EngineWasmtime {
			t.Errorf("task 0 ignored %d engine %q", ts.Ignored, ts.Engine)
		}
		if ts := js.TaskStats[5]; ts.State != tasks.TaskLeased || ts.Attempts != 2 || ts.ErrorKind != "trap" {
			t.Errorf("task 5 %s attempts %d kind %q", ts.State, ts.Attempts, ts.ErrorKind)
		}
		again, _ := l.JobStatus("again")
		if c := again.TaskStats[4].CachedFrom; c == nil || c.Job != "plain" || c.Index != 4 {
			t.Errorf("again task 4 cached from %+v", c)
		}
		done = again.Done
	})
	if done != 7 {
		t.Errorf("again has %d tasks done, want 7", done)
	}
}

// TestSnapshot_UnknownTaskStateIsRefused: a task record no ledger wrote is
// a corrupt snapshot, named, not a task in a state nothing handles.
func TestSnapshot_UnknownTaskStateIsRefused(t *testing.T) {
	a := newApplier(t)
	buildTaskZoo(a)
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		t.Fatal(err)
	}
	// "zombie" is as long as "queued": the record's length prefix still holds.
	corrupt := bytes.Replace(buf.Bytes(), []byte(`{"s":"queued"}`), []byte(`{"s":"zombie"}`), 1)
	if bytes.Equal(corrupt, buf.Bytes()) {
		t.Fatal("no queued task to corrupt")
	}
	err := NewFSM().Restore(bytes.NewReader(corrupt))
	if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), `state "zombie"`) {
		t.Fatalf("restore of a task in state zombie: %v", err)
	}
}
