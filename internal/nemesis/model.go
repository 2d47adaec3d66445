package nemesis

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/peergrid/peergrid/tasks"
)

// The models below are sequential specifications of the records a client
// sees, for porcupine to check a history against: the history is
// linearizable if its calls could have taken effect one at a time, each at
// some instant between its invocation and its return, in an order this
// specification allows. A write whose outcome is unknown may take effect at
// any instant after its invocation, or never.

// jobRecord is what the ledger holds of one job, as far as its clients can
// tell. Counts only grow; once finished, a job's state and counts are fixed.
type jobRecord struct {
	exists bool
	// fin is the finished state: "" while unfinished; "?" finished, which
	// way not yet seen.
	fin          tasks.JobState
	done, failed int  // lower bounds, until pinned
	pinned       bool // done and failed are final
}

const finishedUnseen tasks.JobState = "?"

// jobModel checks job records: submit creates one; status, results and
// cancel observe a state that only moves forward; a cancel that succeeded
// ends the job cancelled; a job never disappears.
var jobModel = porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []any { return []any{jobRecord{}} },
	Step: func(state, input, _ any) []any {
		s, o := state.(jobRecord), input.(*op)
		switch o.Kind {
		case opSubmit:
			switch {
			case s.exists:
				return nil
			case o.Outcome == outUnknown: // found by its name at the end
				return []any{s, jobRecord{exists: true}}
			}
			return []any{jobRecord{exists: true}}
		case opStatus:
			return one(s.observe(o))
		case opResults:
			return one(s.observeResults(o))
		case opCancel:
			return s.cancel(o)
		}
		return nil
	},
	DescribeOperation: describeOp,
	DescribeState:     func(state any) string { return fmt.Sprintf("%+v", state.(jobRecord)) },
}

// observe: a status read saw o.State with o.Done and o.Failed.
func (s jobRecord) observe(o *op) (jobRecord, bool) {
	if o.Outcome == outNotFound || !s.exists {
		return s, o.Outcome == outNotFound && !s.exists
	}
	if o.Done < s.done || o.Failed < s.failed || s.pinned && (o.Done != s.done || o.Failed != s.failed) {
		return s, false
	}
	finished := o.State.Finished()
	switch s.fin {
	case "":
	case finishedUnseen:
		if !finished {
			return s, false
		}
	default:
		if o.State != s.fin {
			return s, false
		}
	}
	next := jobRecord{exists: true, done: o.Done, failed: o.Failed}
	if finished {
		next.fin, next.pinned = o.State, true
	}
	return next, true
}

// observeResults: a results read saw o.Done done and o.Failed failed tasks
// of o.Tasks (every task finished means the job had finished).
func (s jobRecord) observeResults(o *op) (jobRecord, bool) {
	if o.Outcome == outNotFound || !s.exists {
		return s, o.Outcome == outNotFound && !s.exists
	}
	if o.Done < s.done || o.Failed < s.failed || s.pinned && (o.Done != s.done || o.Failed != s.failed) {
		return s, false
	}
	allFinished := o.Done+o.Failed == o.Tasks
	if !allFinished {
		if s.fin != "" {
			return s, false
		}
		return jobRecord{exists: true, done: o.Done, failed: o.Failed}, true
	}
	fin := s.fin
	if fin == "" {
		fin = finishedUnseen
	}
	return jobRecord{exists: true, fin: fin, done: o.Done, failed: o.Failed, pinned: true}, true
}

// cancel: the possible records after a cancel with o's outcome.
func (s jobRecord) cancel(o *op) []any {
	cancelled := jobRecord{exists: true, fin: tasks.JobCancelled, done: s.done, failed: s.failed}
	switch o.Outcome {
	case outOK:
		if !s.exists || s.fin != "" {
			return nil
		}
		return []any{cancelled}
	case outFinished:
		if !s.exists {
			return nil
		}
		if s.fin == "" {
			return []any{jobRecord{exists: true, fin: finishedUnseen, done: s.done, failed: s.failed}}
		}
		return []any{s}
	case outNotFound:
		if s.exists {
			return nil
		}
		return []any{s}
	case outUnknown:
		if s.exists && s.fin == "" {
			return []any{s, cancelled}
		}
	}
	return []any{s}
}

// blobRecord: whether a blob is stored.
type blobRecord struct{ present bool }

// blobModel checks blobs, a register per hash: once a put succeeded, every
// get returns the blob's bytes; a get before any put finds nothing.
var blobModel = porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []any { return []any{blobRecord{}} },
	Step: func(state, input, _ any) []any {
		s, o := state.(blobRecord), input.(*op)
		switch {
		case o.Kind == opPut && o.Outcome == outOK:
			return []any{blobRecord{present: true}}
		case o.Kind == opPut && o.Outcome == outUnknown:
			return []any{s, blobRecord{present: true}}
		case o.Kind == opPut:
			return []any{s}
		case o.Kind == opGet && o.Outcome == outOK:
			if !s.present || o.Wrong != "" {
				return nil
			}
			return []any{s}
		case o.Kind == opGet && o.Outcome == outNotFound:
			if s.present {
				return nil
			}
			return []any{s}
		}
		return nil
	},
	DescribeOperation: describeOp,
	DescribeState:     func(state any) string { return fmt.Sprintf("%+v", state.(blobRecord)) },
}

func one(s jobRecord, ok bool) []any {
	if !ok {
		return nil
	}
	return []any{s}
}

func describeOp(input, _ any) string {
	o := input.(*op)
	out := fmt.Sprintf("#%d %s %s -> %s", o.ID, o.Kind, o.Key, o.Outcome)
	if o.Kind == opStatus || o.Kind == opResults {
		out += fmt.Sprintf(" %s %d done %d failed", o.State, o.Done, o.Failed)
	}
	return out
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, h := range history {
		k := h.Input.(*op).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], h)
	}
	sort.Strings(keys)
	var out [][]porcupine.Operation
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// checkable picks the calls a model can judge and turns them into
// porcupine operations: calls with a key and a known effect, and writes
// whose outcome is unknown, which may take effect until the end of time.
func checkable(ops []op, kinds ...string) []porcupine.Operation {
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	var out []porcupine.Operation
	for i := range ops {
		o := &ops[i]
		if !want[o.Kind] || o.Key == "" {
			continue
		}
		ret := int64(o.Return)
		switch {
		case o.Outcome == outUnknown && o.write():
			ret = math.MaxInt64
		case o.Outcome == outUnknown || o.Outcome == outRefused:
			continue // a read that failed saw nothing; a refused write did nothing
		}
		out = append(out, porcupine.Operation{ClientId: o.Client, Input: o, Call: int64(o.Invoke), Output: o, Return: ret})
	}
	return out
}

// checkLinearizable checks the job and blob records of a history. It
// writes a visualization next to the history for a history that is not
// linearizable, and returns what went wrong.
func checkLinearizable(ops []op, dir string) []string {
	var problems []string
	for _, c := range []struct {
		name  string
		model porcupine.NondeterministicModel
		kinds []string
	}{
		{"jobs", jobModel, []string{opSubmit, opStatus, opResults, opCancel}},
		{"blobs", blobModel, []string{opPut, opGet}},
	} {
		model := c.model.ToModel()
		res, info := porcupine.CheckOperationsVerbose(model, checkable(ops, c.kinds...), time.Minute)
		switch res {
		case porcupine.Illegal:
			path := fmt.Sprintf("%s/linearizability-%s.html", dir, c.name)
			porcupine.VisualizePath(model, info, path)
			problems = append(problems, fmt.Sprintf("the %s history is not linearizable (see %s)", c.name, path))
		case porcupine.Unknown:
			problems = append(problems, fmt.Sprintf("the %s history could not be checked within a minute", c.name))
		}
	}
	return problems
}
