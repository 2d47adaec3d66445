package tasks

import "time"

// Result is the outcome of one attempt of one task: the one shape it keeps
// from the worker that ran it, over the wire (api.Report embeds it), into
// the ledger's command. Only the ledger's compact task record and the
// executor's own protocol convert it.
type Result struct {
	ExitCode int    `json:"exit_code"`
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	// StdoutBlob, when set, names an erasure-coded blob holding stdout
	// (Stdout is then empty): a large result the worker pushed to the
	// storage peers itself and whose manifest it committed first.
	StdoutBlob string        `json:"stdout_blob,omitempty"`
	ErrorKind  string        `json:"error_kind,omitempty"` // "" on success
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	Engine     string        `json:"engine,omitempty"` // the engine that ran it
}

// Failed reports whether the attempt failed (an ErrorKind is set).
func (r *Result) Failed() bool { return r.ErrorKind != "" }
