package ledger

import (
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
