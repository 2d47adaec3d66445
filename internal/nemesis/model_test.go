package nemesis

import (
	"testing"
	"time"

	"github.com/peergrid/peergrid/tasks"
)

// at makes a call that ran from ms a to ms b.
func at(a, b int, o op) op {
	o.Invoke, o.Return = time.Duration(a)*time.Millisecond, time.Duration(b)*time.Millisecond
	if o.Outcome == "" {
		o.Outcome = outOK
	}
	return o
}

func status(state tasks.JobState, done, failed int) op {
	return op{Kind: opStatus, Key: "j", State: state, Done: done, Failed: failed, Tasks: 10}
}

func results(done, failed int) op {
	return op{Kind: opResults, Key: "j", Done: done, Failed: failed, Tasks: 10}
}

var submitted = op{Kind: opSubmit, Key: "j"}

// TestModels_JudgeHistories: the job and blob models accept what a
// linearizable grid may show and refuse what it may not.
func TestModels_JudgeHistories(t *testing.T) {
	cases := []struct {
		name  string
		ops   []op
		legal bool
	}{
		{"a job runs to completion", []op{at(0, 1, submitted), at(2, 3, status(tasks.JobQueued, 0, 0)),
			at(4, 5, status(tasks.JobRunning, 5, 0)), at(6, 7, results(10, 0)), at(8, 9, status(tasks.JobComplete, 10, 0))}, true},
		{"done goes back", []op{at(0, 1, submitted), at(2, 3, status(tasks.JobRunning, 5, 0)),
			at(4, 5, status(tasks.JobRunning, 3, 0))}, false},
		{"concurrent reads may land in either order", []op{at(0, 1, submitted), at(2, 20, status(tasks.JobRunning, 5, 0)),
			at(4, 6, status(tasks.JobRunning, 3, 0))}, true},
		{"a finished job runs again", []op{at(0, 1, submitted), at(2, 3, status(tasks.JobComplete, 10, 0)),
			at(4, 5, status(tasks.JobRunning, 10, 0))}, false},
		{"results of every task, then a running job", []op{at(0, 1, submitted), at(2, 3, results(10, 0)),
			at(4, 5, status(tasks.JobRunning, 10, 0))}, false},
		{"a cancelled job completes", []op{at(0, 1, submitted), at(2, 3, op{Kind: opCancel, Key: "j"}),
			at(4, 5, status(tasks.JobComplete, 10, 0))}, false},
		{"a cancel of a finished job", []op{at(0, 1, submitted), at(2, 3, op{Kind: opCancel, Key: "j", Outcome: outFinished}),
			at(4, 5, status(tasks.JobComplete, 10, 0))}, true},
		{"a cancel said finished, then the job runs", []op{at(0, 1, submitted), at(2, 3, op{Kind: opCancel, Key: "j", Outcome: outFinished}),
			at(4, 5, status(tasks.JobRunning, 4, 0))}, false},
		{"a cancel whose answer was lost may have applied", []op{at(0, 1, submitted), at(2, 3, op{Kind: opCancel, Key: "j", Outcome: outUnknown}),
			at(4, 5, status(tasks.JobRunning, 4, 0)), at(6, 7, status(tasks.JobCancelled, 4, 6))}, true},
		{"a job lost", []op{at(0, 1, submitted), at(2, 3, op{Kind: opStatus, Key: "j", Outcome: outNotFound})}, false},
		{"a submit whose answer was lost, found later", []op{at(0, 1, op{Kind: opSubmit, Key: "j", Outcome: outUnknown}),
			at(5, 6, status(tasks.JobComplete, 10, 0))}, true},
	}
	blobCases := []struct {
		name  string
		ops   []op
		legal bool
	}{
		{"put then get", []op{at(0, 1, op{Kind: opPut, Key: "b"}), at(2, 3, op{Kind: opGet, Key: "b"})}, true},
		{"an acknowledged put lost", []op{at(0, 1, op{Kind: opPut, Key: "b"}), at(2, 3, op{Kind: opGet, Key: "b", Outcome: outNotFound})}, false},
		{"a get before any put", []op{at(0, 1, op{Kind: opGet, Key: "b"})}, false},
		{"a put whose answer was lost lands later", []op{at(0, 1, op{Kind: opPut, Key: "b", Outcome: outUnknown}),
			at(2, 3, op{Kind: opGet, Key: "b", Outcome: outNotFound}), at(4, 5, op{Kind: opGet, Key: "b"})}, true},
		{"a blob appears, then vanishes", []op{at(0, 1, op{Kind: opPut, Key: "b", Outcome: outUnknown}),
			at(2, 3, op{Kind: opGet, Key: "b"}), at(4, 5, op{Kind: opGet, Key: "b", Outcome: outNotFound})}, false},
		{"wrong bytes", []op{at(0, 1, op{Kind: opPut, Key: "b"}), at(2, 3, op{Kind: opGet, Key: "b", Wrong: "3 bytes"})}, false},
	}
	for _, c := range append(cases, blobCases...) {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.ops {
				c.ops[i].ID = i
			}
			problems := checkLinearizable(c.ops, t.TempDir())
			if legal := len(problems) == 0; legal != c.legal {
				t.Fatalf("legal %v, want %v: %v", legal, c.legal, problems)
			}
		})
	}
}
