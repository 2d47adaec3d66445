package tasks

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

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

// ResultHash is the vote of a successful result, what replicas compare:
// hex sha256(exit code as 4 bytes big-endian || sha256 of stdout). stdoutSum
// is the hex sha256 of stdout: a stdout blob's name (blobs are named by
// their content), else the hash of the inline bytes (see StdoutSum). Only
// the exit code and stdout vote: stderr is a log, and the engine and run
// time differ between honest workers.
func ResultHash(exitCode int, stdoutSum string) string {
	sum, err := hex.DecodeString(stdoutSum)
	if err != nil || len(sum) != sha256.Size {
		// Not a content hash: hash the name itself, so a malformed one
		// never agrees with a real result.
		s := sha256.Sum256([]byte(stdoutSum))
		sum = s[:]
	}
	buf := make([]byte, 4, 4+sha256.Size)
	binary.BigEndian.PutUint32(buf, uint32(int32(exitCode)))
	h := sha256.Sum256(append(buf, sum...))
	return hex.EncodeToString(h[:])
}

// StdoutSum is the hex sha256 of a result's stdout: its blob's name when
// it was erasure-coded, else the hash of the inline bytes.
func (r *Result) StdoutSum() string {
	if r.StdoutBlob != "" {
		return r.StdoutBlob
	}
	s := sha256.Sum256(r.Stdout)
	return hex.EncodeToString(s[:])
}
