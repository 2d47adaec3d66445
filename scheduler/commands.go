package scheduler

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// CommandType is the first byte of every ledger command. Types are
// append-only: a type once used is never reused or changed in meaning. A new
// shape of an existing command gets a new type. Types with IgnorableFlag set
// may be skipped by an older server that does not know them (as Nomad does);
// all others make an unknown-type server stop rather than diverge.
type CommandType uint8

const (
	cmdBatch        CommandType = 1 // several commands in one Raft entry
	cmdPutBlob      CommandType = 2
	cmdSubmitJob    CommandType = 3
	cmdLeaseTasks   CommandType = 4
	cmdCompleteTask CommandType = 5
	cmdExpireLeases CommandType = 6
	cmdCancelJob    CommandType = 7
	cmdUpsertPeer   CommandType = 8
	cmdReleaseTasks CommandType = 9
	cmdPutManifest  CommandType = 10
	cmdPurgeJob     CommandType = 11
	cmdUnpinBlob    CommandType = 12
	cmdDeleteBlobs  CommandType = 13

	// IgnorableFlag marks a command type an older server may skip.
	IgnorableFlag CommandType = 128
)

func (t CommandType) String() string {
	names := map[CommandType]string{
		cmdBatch: "batch", cmdPutBlob: "put-blob", cmdSubmitJob: "submit-job",
		cmdLeaseTasks: "lease-tasks", cmdCompleteTask: "complete-tasks",
		cmdExpireLeases: "expire-leases", cmdCancelJob: "cancel-job",
		cmdUpsertPeer: "upsert-peer", cmdReleaseTasks: "release-tasks", cmdPutManifest: "put-manifest",
		cmdPurgeJob: "purge-job", cmdUnpinBlob: "unpin-blob", cmdDeleteBlobs: "delete-blobs",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Rule violations are returned as the command's response, never a panic: the
// log is fine, the request was not.
var (
	ErrJobExists     = errors.New("job already exists")
	ErrJobNotFound   = errors.New("job not found")
	ErrBlobMissing   = errors.New("blob not in the ledger")
	ErrJobFinished   = errors.New("job already finished")
	ErrUnknownWorker = errors.New("unknown worker")
)

// PutBlobCommand stores a small blob inline in the ledger. The server checked
// that Data hashes to Hash before proposing it.
type PutBlobCommand struct {
	Hash string `json:"hash"`
	Data []byte `json:"data"`
	Now  int64  `json:"now,omitempty"`
	Pin  bool   `json:"pin,omitempty"` // kept until unpinned, even if no job uses it
}

// PutManifestCommand records where an erasure-coded blob's shards are: a new
// blob, or a new placement after repair. The server validated it.
type PutManifestCommand struct {
	Manifest *storage.Manifest `json:"manifest"`
	Now      int64             `json:"now,omitempty"`
	Pin      bool              `json:"pin,omitempty"`
}

// PurgeJobCommand removes a finished job and its results from the ledger;
// the blobs only it used become garbage.
type PurgeJobCommand struct {
	ID string `json:"id"`
}

// UnpinBlobCommand lets garbage collection take a blob no job uses.
type UnpinBlobCommand struct {
	Hash string `json:"hash"`
}

// DeleteBlobsCommand garbage-collects blobs. Apply deletes each only if it
// is still unpinned and unused by any job, so a race with a submit is safe.
type DeleteBlobsCommand struct {
	Hashes []string `json:"hashes"`
}

// ErrJobNotFinished is returned when purging a job that may still run.
var ErrJobNotFinished = errors.New("job is not finished")

// SubmitJobCommand creates a job with all its tasks queued. The leader stamps
// the id and the time.
type SubmitJobCommand struct {
	ID   string        `json:"id"`
	Spec tasks.JobSpec `json:"spec"`
	Now  int64         `json:"now"` // unix nanoseconds
}

// LeaseTasksCommand grants up to Max queued tasks to Worker until Expiry...
// plus each task's own timeout. Which tasks is a pure function of the ledger
// (priority, then fair share between jobs, then submission order), so every
// server picks the same ones; the leader only stamps who and when.
type LeaseTasksCommand struct {
	Worker string `json:"worker"`
	Max    int    `json:"max"`
	Now    int64  `json:"now"`
	// Slack is added to each task's timeout to give its lease expiry: time
	// for the worker to fetch, start and report.
	Slack int64 `json:"slack"`
	// Engines the worker has: jobs that need another engine are skipped.
	Engines []string `json:"engines,omitempty"`
}

// Grant is one task given by a LeaseTasksCommand.
type Grant struct {
	Job     string `json:"job"`
	Index   int    `json:"index"`
	Attempt int    `json:"attempt"`
	Expiry  int64  `json:"expiry"`
}

// CompleteTasksCommand records the outcome of task attempts. A report whose
// attempt is not the task's current lease is ignored and counted: the first
// valid completion wins.
type CompleteTasksCommand struct {
	Worker  string       `json:"worker"`
	Now     int64        `json:"now"`
	Reports []TaskReport `json:"reports"`
}

// TaskReport is the outcome of one attempt.
type TaskReport struct {
	Job       string `json:"job"`
	Index     int    `json:"index"`
	Attempt   int    `json:"attempt"`
	ExitCode  int    `json:"exit_code"`
	ErrorKind string `json:"error_kind,omitempty"`
	Error     string `json:"error,omitempty"`
	Duration  int64  `json:"duration"`
	Stdout    []byte `json:"stdout,omitempty"`
	Stderr    []byte `json:"stderr,omitempty"`
	Engine    string `json:"engine,omitempty"`
	// StdoutBlob names an erasure-coded stdout committed before this report.
	StdoutBlob string `json:"stdout_blob,omitempty"`
}

// ExpireLeasesCommand returns leases to the queue: ones past their expiry, or
// held by a worker the leader saw go down. Each names the attempt it expires,
// so an expiry that raced with a completion does nothing.
type ExpireLeasesCommand struct {
	Now    int64     `json:"now"`
	Reason string    `json:"reason"`
	Tasks  []TaskRef `json:"tasks"`
}

// ReleaseTasksCommand hands leased tasks back unrun (a draining worker): they
// are queued again at once and the attempt is not counted against retries.
type ReleaseTasksCommand struct {
	Worker string    `json:"worker"`
	Now    int64     `json:"now"`
	Tasks  []TaskRef `json:"tasks"`
}

// TaskRef names one attempt of one task.
type TaskRef struct {
	Job     string `json:"job"`
	Index   int    `json:"index"`
	Attempt int    `json:"attempt"`
}

// CancelJobCommand cancels a job: its unfinished tasks will not run.
type CancelJobCommand struct {
	ID  string `json:"id"`
	Now int64  `json:"now"`
}

// UpsertPeerCommand records a peer joining, changing, or going down. Only
// transitions are committed; liveness between them lives in the leader's memory.
type UpsertPeerCommand struct {
	ID      string   `json:"id"`
	Address string   `json:"address,omitempty"`
	Roles   []string `json:"roles,omitempty"`
	Cores   int      `json:"cores,omitempty"`
	State   string   `json:"state"`
	Now     int64    `json:"now"`
	Engines []string `json:"engines,omitempty"`
	// StorageAddress is where a storage peer serves shards (kept apart
	// from Address, a server's API address when the peer is also a server).
	StorageAddress string `json:"storage_address,omitempty"`
}

// Encode a command as [type][JSON payload].
func encodeCommand(t CommandType, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// encodeBatch packs encoded commands into one entry:
// [cmdBatch][uvarint n]([uvarint len][command])*.
func encodeBatch(cmds [][]byte) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, c := range cmds {
		size += binary.MaxVarintLen64 + len(c)
	}
	out := make([]byte, 0, size)
	out = append(out, byte(cmdBatch))
	out = binary.AppendUvarint(out, uint64(len(cmds)))
	for _, c := range cmds {
		out = binary.AppendUvarint(out, uint64(len(c)))
		out = append(out, c...)
	}
	return out
}

var errCorruptBatch = errors.New("corrupt batch entry")

func decodeBatch(b []byte) ([][]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errCorruptBatch
	}
	b = b[k:]
	cmds := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errCorruptBatch
		}
		cmds = append(cmds, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	return cmds, nil
}
