package ledger

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// completeTasksV1 is CompleteTasksCommand as cmdCompleteTasksV1 encoded it:
// its reports named the duration "duration". Logs written before
// cmdCompleteTasks still hold it, so Apply converts it; nothing proposes it.
type completeTasksV1 struct {
	Worker  string         `json:"worker"`
	Now     int64          `json:"now"`
	Reports []taskReportV1 `json:"reports"`
}

type taskReportV1 struct {
	Job        string `json:"job"`
	Index      int    `json:"index"`
	Attempt    int    `json:"attempt"`
	ExitCode   int    `json:"exit_code"`
	ErrorKind  string `json:"error_kind,omitempty"`
	Error      string `json:"error,omitempty"`
	Duration   int64  `json:"duration"`
	Stdout     []byte `json:"stdout,omitempty"`
	Stderr     []byte `json:"stderr,omitempty"`
	Engine     string `json:"engine,omitempty"`
	StdoutBlob string `json:"stdout_blob,omitempty"`
}

func (*completeTasksV1) Type() CommandType { return cmdCompleteTasksV1 }

func (c *completeTasksV1) upgrade() *CompleteTasksCommand {
	out := &CompleteTasksCommand{Worker: c.Worker, Now: c.Now, Reports: make([]api.Report, len(c.Reports))}
	for i, r := range c.Reports {
		out.Reports[i] = api.Report{
			TaskRef: api.TaskRef{Job: r.Job, Index: r.Index, Attempt: r.Attempt},
			Result: tasks.Result{ExitCode: r.ExitCode, ErrorKind: r.ErrorKind, Error: r.Error, Duration: time.Duration(r.Duration),
				Stdout: r.Stdout, Stderr: r.Stderr, Engine: r.Engine, StdoutBlob: r.StdoutBlob},
		}
	}
	return out
}

// submitJobV1 is a submit as cmdSubmitJobV1 encoded it (the same fields):
// applied with the rules it was committed under (validateSpecV1, no
// quotas), so an old log gives the ledger it gave then.
type submitJobV1 struct{ SubmitJobCommand }

func (*submitJobV1) Type() CommandType { return cmdSubmitJobV1 }

// submitJobV2 is a submit as cmdSubmitJob encoded it (the same fields):
// bounds and quotas checked, but no result cache, so a log written before
// the cache replays to the ledger it gave then.
type submitJobV2 struct{ SubmitJobCommand }

func (*submitJobV2) Type() CommandType { return cmdSubmitJob }

// putBlobV1 is a put as cmdPutBlobV1 encoded it, applied without quotas.
type putBlobV1 struct{ PutBlobCommand }

func (*putBlobV1) Type() CommandType { return cmdPutBlobV1 }

// validateSpecV1 is JobSpec.Validate as it was before job fields had
// bounds (retries and priority unbounded, timeout any positive duration).
// Frozen: cmdSubmitJobV1 entries are checked by it and nothing else.
func validateSpecV1(s *tasks.JobSpec) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", tasks.ErrInvalidSpec, fmt.Sprintf(format, a...))
	}
	switch {
	case strings.TrimSpace(s.Name) == "":
		return bad("name is empty")
	case !isHexHashV1(s.ModuleHash):
		return bad("module hash %q is not a hex SHA-256", s.ModuleHash)
	case s.Tasks < 1 || s.Tasks > tasks.MaxTasks:
		return bad("tasks = %d, want 1..%d", s.Tasks, tasks.MaxTasks)
	case len(s.Inputs) != 0 && len(s.Inputs) != s.Tasks:
		return bad("%d inputs for %d tasks", len(s.Inputs), s.Tasks)
	case s.Timeout <= 0:
		return bad("timeout must be positive")
	case s.Memory == 0 || s.Memory > tasks.MaxMemory:
		return bad("memory = %d bytes, want 1..%d", s.Memory, uint64(tasks.MaxMemory))
	case s.MaxOutput == 0 || s.MaxOutput > tasks.MaxOutput:
		return bad("max_output = %d bytes, want 1..%d", s.MaxOutput, uint64(tasks.MaxOutput))
	case s.Retries < 0:
		return bad("retries must not be negative")
	case s.DataShards < 0 || s.ParityShards < 0 || s.DataShards+s.ParityShards > 256 || s.ParityShards > 0 && s.DataShards == 0:
		return bad("erasure k = %d, m = %d", s.DataShards, s.ParityShards)
	case s.Engine != "" && !slices.Contains(tasks.Engines, s.Engine):
		return bad("engine %q, want one of %s", s.Engine, strings.Join(tasks.Engines, ", "))
	}
	for i, in := range s.Inputs {
		if !isHexHashV1(in.Hash) {
			return bad("input %d (%s): hash %q is not a hex SHA-256", i, in.Name, in.Hash)
		}
	}
	return nil
}

func isHexHashV1(s string) bool {
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
