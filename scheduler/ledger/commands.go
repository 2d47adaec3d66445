package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/peergrid/peergrid/api"
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
	cmdBatch CommandType = 1 // several commands in one Raft entry
	// cmdPutBlobV1 and cmdSubmitJobV1 are PutBlobCommand and
	// SubmitJobCommand before quotas: old logs still hold them and Apply
	// applies them as it always did (legacy.go); nothing proposes them.
	cmdPutBlobV1   CommandType = 2
	cmdSubmitJobV1 CommandType = 3
	cmdLeaseTasks  CommandType = 4
	// cmdCompleteTasksV1 is the first shape of CompleteTasksCommand, whose
	// reports spelled the duration "duration"; still applied from old logs
	// (legacy.go), never proposed.
	cmdCompleteTasksV1 CommandType = 5
	cmdExpireLeases    CommandType = 6
	cmdCancelJob       CommandType = 7
	cmdUpsertPeer      CommandType = 8
	cmdReleaseTasks    CommandType = 9
	cmdPutManifest     CommandType = 10
	cmdPurgeJob        CommandType = 11
	cmdUnpinBlob       CommandType = 12
	cmdDeleteBlobs     CommandType = 13
	// cmdCompleteTasks carries api.Report, the one result shape.
	cmdCompleteTasks    CommandType = 14
	cmdCreateCredential CommandType = 15
	cmdRevokeCredential CommandType = 16
	cmdJoinWorker       CommandType = 17
	// cmdRenewLeases is not ignorable: a server that skipped it would
	// expire a paused worker's leases that the others keep.
	cmdRenewLeases CommandType = 18
	// cmdCommitManifest is the write-once manifest commit (see
	// CommitManifestCommand); cmdPutManifest, which replaced a manifest
	// outright, is still applied from old logs but no longer proposed.
	cmdCommitManifest CommandType = 23
	// cmdSubmitJob and cmdPutBlob are the shapes of cmdSubmitJobV1 and
	// cmdPutBlobV1 whose Apply also enforces the job fields' bounds and the
	// owner's quotas. New types, not new rules for the old ones: an old
	// log's submits and puts must apply as they did when committed, and a
	// server too old to know these stops rather than apply them unchecked.
	cmdSubmitJob CommandType = 25
	cmdPutBlob   CommandType = 26
	// cmdSubmitJobCached is cmdSubmitJob whose Apply also takes the result
	// cache (cache.go): tasks whose content already has a done result of the
	// same owner are done at submit. A new type so that an old log's
	// submits (type 25, applied as submitJobV2) gain no hit on replay that
	// the servers which applied them before the cache did not see.
	cmdSubmitJobCached CommandType = 27
	// cmdUnpinOwn takes one owner's pin off a blob (UnpinOwnCommand);
	// cmdUnpinBlob, which takes every pin off, is what an operator sends.
	cmdUnpinOwn CommandType = 28
	// cmdSubmitJobReplicated is a SubmitJobCommand whose spec asks for
	// replicas (tasks.JobSpec.Replicated), applied as cmdSubmitJobCached.
	// Its own type so that a server too old to know replicas stops rather
	// than run the job as one result per task, diverging from the others.
	// Every later command that touches replica state (a lease, report,
	// expiry, release, renewal or cancel of such a job's tasks, a worker's
	// distrust) can only follow one of these, so types 4-18 apply to an
	// old log exactly as before. Type 30 is reserved for issue 14 and unused.
	cmdSubmitJobReplicated CommandType = 29
	// cmdTrustPeer clears a distrusted worker (TrustPeerCommand).
	cmdTrustPeer CommandType = 31

	// IgnorableFlag marks a command type an older server may skip.
	IgnorableFlag CommandType = 128
)

func (t CommandType) String() string {
	names := map[CommandType]string{
		cmdBatch: "batch", cmdPutBlobV1: "put-blob-v1", cmdSubmitJobV1: "submit-job-v1", cmdPutBlob: "put-blob", cmdSubmitJob: "submit-job-v2", cmdSubmitJobCached: "submit-job",
		cmdLeaseTasks: "lease-tasks", cmdCompleteTasksV1: "complete-tasks-v1", cmdCompleteTasks: "complete-tasks",
		cmdExpireLeases: "expire-leases", cmdCancelJob: "cancel-job",
		cmdUpsertPeer: "upsert-peer", cmdReleaseTasks: "release-tasks", cmdPutManifest: "put-manifest",
		cmdPurgeJob: "purge-job", cmdUnpinBlob: "unpin-blob", cmdUnpinOwn: "unpin-own", cmdDeleteBlobs: "delete-blobs",
		cmdCreateCredential: "create-credential", cmdRevokeCredential: "revoke-credential", cmdJoinWorker: "join-worker", cmdRenewLeases: "renew-leases",
		cmdCommitManifest: "commit-manifest", cmdSetModuleEngine: "set-module-engine",
		cmdSubmitJobReplicated: "submit-job-replicated", cmdTrustPeer: "trust-peer",
		cmdLeaseTasksCompact: "lease-tasks-compact", cmdCompleteTasksCompact: "complete-tasks-compact",
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
	ErrRequestReused = errors.New("request id reused")
	ErrNotOwner      = errors.New("not the owner")
	// ErrDistrusted refuses a lease to a worker whose results were
	// outvoted too often, until an operator trusts it again.
	ErrDistrusted = errors.New("worker distrusted: its results were outvoted too often; an operator may clear it with peergrid peers trust")
	// ErrManifestCommitted refuses a manifest that would replace a
	// committed one (see CommitManifestCommand).
	ErrManifestCommitted = errors.New("blob manifest already committed; manifests are write-once")
	// ErrBadCommand is a command no server should have proposed.
	ErrBadCommand = errors.New("malformed command")
)

// PutBlobCommand stores a small blob inline in the ledger. The server checked
// that Data hashes to Hash before proposing it; Apply refuses it past the
// owner's inline or pinned bytes quota.
type PutBlobCommand struct {
	Hash string `json:"hash"`
	Data []byte `json:"data"`
	Now  int64  `json:"now,omitempty"`
	Pin  bool   `json:"pin,omitempty"` // kept until unpinned, even if no job uses it
	// Owner is the credential that put it (it may read it back).
	Owner string `json:"owner,omitempty"`
}

// PutManifestCommand recorded where an erasure-coded blob's shards are,
// replacing any manifest the blob had. Old logs still hold it and Apply
// still replaces; nothing proposes it any more (CommitManifestCommand does).
type PutManifestCommand struct {
	Manifest *storage.Manifest `json:"manifest"`
	Now      int64             `json:"now,omitempty"`
	Pin      bool              `json:"pin,omitempty"`
	Owner    string            `json:"owner,omitempty"`
}

// CommitManifestCommand records where an erasure-coded blob's shards are. A
// committed manifest is write-once: the first commit of a blob's manifest
// wins, and a later one is applied only if it describes the same content
// (storage.SameContent: coding, segment, shard hashes and proof roots) and
// moves no shard, or moves only the shards in Moves, each to a peer (a
// repair the leader ordered: it fills Moves from its order). Anything else
// is refused with ErrManifestCommitted and changes nothing. A commit of the
// identical manifest (a retry) only notes Owner and Pin.
type CommitManifestCommand struct {
	Manifest *storage.Manifest `json:"manifest"`
	Now      int64             `json:"now,omitempty"`
	Pin      bool              `json:"pin,omitempty"`
	Owner    string            `json:"owner,omitempty"`
	// Moves are the shards a repair may place on a new peer.
	Moves []storage.ShardLoc `json:"moves,omitempty"`
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

// UnpinOwnCommand takes Owner's pin off a blob; the blob stays pinned
// while another owner's pin is on it. Anyone who knows a blob's hash can
// put its manifest again and so become an owner: an owner's unpin must not
// undo another's pin. A blob pinned before pins were kept per owner
// (Pinned with no PinnedBy) is unpinned whole, as it was then.
type UnpinOwnCommand struct {
	Hash  string `json:"hash"`
	Owner string `json:"owner"`
}

// DeleteBlobsCommand garbage-collects blobs. Apply deletes each only if it
// is still unpinned and unused by any job, so a race with a submit is safe.
type DeleteBlobsCommand struct {
	Hashes []string `json:"hashes"`
}

// ErrJobNotFinished is returned when purging a job that may still run.
var ErrJobNotFinished = errors.New("job is not finished")

// SubmitJobCommand creates a job with its tasks queued, except those the
// result cache answers (done at submit, see cache.go). The leader stamps
// the id and the time. Apply refuses a spec out of the job fields' bounds
// (tasks.JobSpec.Validate) or past the owner's quotas.
type SubmitJobCommand struct {
	ID   string        `json:"id"`
	Spec tasks.JobSpec `json:"spec"`
	Now  int64         `json:"now"` // unix nanoseconds
	// RequestID is the client's id for this submit: a repeat of it returns
	// the job the first one created.
	RequestID string `json:"request_id,omitempty"`
	// Owner is the credential that submitted the job: a submitter sees and
	// changes only its own jobs.
	Owner string `json:"owner,omitempty"`
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
	// Draw is the leader's random draw: an adaptive job's tasks first
	// leased by this command are checked or not by it (replicas.go), so
	// every server makes the same choice.
	Draw uint64 `json:"draw,omitempty"`
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
// valid completion wins. A report whose StdoutBlob is set names an
// erasure-coded stdout committed before it.
type CompleteTasksCommand struct {
	Worker  string       `json:"worker"`
	Now     int64        `json:"now"`
	Reports []api.Report `json:"reports"`
}

// ExpireLeasesCommand returns leases to the queue: ones past their expiry, or
// held by a worker the leader saw go down. Each names the attempt it expires,
// so an expiry that raced with a completion does nothing.
type ExpireLeasesCommand struct {
	Now    int64         `json:"now"`
	Reason string        `json:"reason"`
	Tasks  []api.TaskRef `json:"tasks"`
}

// ReleaseTasksCommand hands leased tasks back unrun (a draining worker): they
// are queued again at once and the attempt is not counted against retries.
type ReleaseTasksCommand struct {
	Worker string        `json:"worker"`
	Now    int64         `json:"now"`
	Tasks  []api.TaskRef `json:"tasks"`
}

// RenewLeasesCommand keeps a paused worker's leases: each lease it names,
// if still the worker's, expires no sooner than Now plus its task's timeout
// plus Slack, as if granted now. A paused worker's executors are stopped and
// pause time does not count against a task's timeout, so a lease granted
// before the pause would otherwise expire under a task that has most of its
// time left. The leader proposes it on a paused worker's heartbeat, only
// for leases close to expiry and only for a bounded pause (see
// scheduler/server), so it is rare; a worker paused longer hands its tasks
// back itself.
type RenewLeasesCommand struct {
	Worker string        `json:"worker"`
	Now    int64         `json:"now"`
	Slack  int64         `json:"slack"`
	Tasks  []api.TaskRef `json:"tasks"`
}

// TrustPeerCommand clears a worker's distrust (an operator's decision):
// it is leased work again, its strikes are forgotten and its streak
// restarts at 0, so adaptive replication checks it again as a new worker.
type TrustPeerCommand struct {
	ID  string `json:"id"`
	Now int64  `json:"now"`
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

// Command is a ledger command: a typed record whose Go type fixes its
// CommandType, so a payload and its type byte cannot disagree. Only this
// package's command types implement it.
type Command interface {
	Type() CommandType
}

func (*PutBlobCommand) Type() CommandType   { return cmdPutBlob }
func (*TrustPeerCommand) Type() CommandType { return cmdTrustPeer }

// Type is cmdSubmitJobReplicated for a job with replicas (see there).
func (c *SubmitJobCommand) Type() CommandType {
	if c.Spec.Replicated() {
		return cmdSubmitJobReplicated
	}
	return cmdSubmitJobCached
}

func (*LeaseTasksCommand) Type() CommandType     { return cmdLeaseTasks }
func (*CompleteTasksCommand) Type() CommandType  { return cmdCompleteTasks }
func (*ExpireLeasesCommand) Type() CommandType   { return cmdExpireLeases }
func (*CancelJobCommand) Type() CommandType      { return cmdCancelJob }
func (*UpsertPeerCommand) Type() CommandType     { return cmdUpsertPeer }
func (*ReleaseTasksCommand) Type() CommandType   { return cmdReleaseTasks }
func (*PutManifestCommand) Type() CommandType    { return cmdPutManifest }
func (*CommitManifestCommand) Type() CommandType { return cmdCommitManifest }
func (*PurgeJobCommand) Type() CommandType       { return cmdPurgeJob }
func (*UnpinBlobCommand) Type() CommandType      { return cmdUnpinBlob }
func (*UnpinOwnCommand) Type() CommandType       { return cmdUnpinOwn }
func (*DeleteBlobsCommand) Type() CommandType    { return cmdDeleteBlobs }
func (*RenewLeasesCommand) Type() CommandType    { return cmdRenewLeases }

// commandTypes makes an empty command of each type Apply knows.
var commandTypes = map[CommandType]func() Command{
	cmdPutBlobV1:           func() Command { return &putBlobV1{} },
	cmdSubmitJobV1:         func() Command { return &submitJobV1{} },
	cmdPutBlob:             func() Command { return &PutBlobCommand{} },
	cmdSubmitJob:           func() Command { return &submitJobV2{} },
	cmdSubmitJobCached:     func() Command { return &SubmitJobCommand{} },
	cmdSubmitJobReplicated: func() Command { return &SubmitJobCommand{} },
	cmdTrustPeer:           func() Command { return &TrustPeerCommand{} },
	cmdLeaseTasks:          func() Command { return &LeaseTasksCommand{} },
	cmdCompleteTasksV1:     func() Command { return &completeTasksV1{} },
	cmdCompleteTasks:       func() Command { return &CompleteTasksCommand{} },
	cmdExpireLeases:        func() Command { return &ExpireLeasesCommand{} },
	cmdCancelJob:           func() Command { return &CancelJobCommand{} },
	cmdUpsertPeer:          func() Command { return &UpsertPeerCommand{} },
	cmdReleaseTasks:        func() Command { return &ReleaseTasksCommand{} },
	cmdPutManifest:         func() Command { return &PutManifestCommand{} },
	cmdPurgeJob:            func() Command { return &PurgeJobCommand{} },
	cmdUnpinBlob:           func() Command { return &UnpinBlobCommand{} },
	cmdUnpinOwn:            func() Command { return &UnpinOwnCommand{} },
	cmdDeleteBlobs:         func() Command { return &DeleteBlobsCommand{} },
	cmdCreateCredential:    func() Command { return &CreateCredentialCommand{} },
	cmdRevokeCredential:    func() Command { return &RevokeCredentialCommand{} },
	cmdJoinWorker:          func() Command { return &JoinWorkerCommand{} },
	cmdRenewLeases:         func() Command { return &RenewLeasesCommand{} },
	cmdCommitManifest:      func() Command { return &CommitManifestCommand{} },
}

// ErrCorruptCommand is returned for an entry that cannot be decoded: in a
// committed log it means corruption, and Apply stops the server.
var ErrCorruptCommand = errors.New("corrupt command")

// DecodeCommand decodes one encoded command (not a batch). An unknown type
// with IgnorableFlag set decodes to nil, nil: an older server skips it. A
// command of an old shape is upgraded to the current one.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorruptCommand)
	}
	t := CommandType(data[0])
	if decode := compactDecoders[t]; decode != nil {
		return decode(data[1:])
	}
	newCommand := commandTypes[t]
	switch {
	case newCommand == nil && t&IgnorableFlag != 0:
		return nil, nil
	case newCommand == nil:
		return nil, fmt.Errorf("%w: unknown command type %d", ErrCorruptCommand, uint8(t))
	}
	c := newCommand()
	if err := json.Unmarshal(data[1:], c); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", ErrCorruptCommand, t, err)
	}
	if v1, ok := c.(*completeTasksV1); ok {
		return v1.upgrade(), nil
	}
	return c, nil
}

// Encode encodes a command as one log entry: [type][JSON payload]. Every
// server applies it; EncodeCompact is smaller and quicker to apply where all
// voters know the compact types.
func Encode(c Command) ([]byte, error) {
	t := c.Type()
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// EncodeBatch packs encoded commands into one log entry, applied in order:
// [cmdBatch][uvarint n]([uvarint len][command])*. The entry's response is
// a []any of the commands' responses.
func EncodeBatch(cmds [][]byte) []byte {
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

var errCorruptBatch = fmt.Errorf("%w: batch entry", ErrCorruptCommand)

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

// Ref names the attempt a grant leases.
func (g Grant) Ref() api.TaskRef { return api.TaskRef{Job: g.Job, Index: g.Index, Attempt: g.Attempt} }
