package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// FSM applies ledger commands in log order. Apply routes each command type
// to a short applyX on the Ledger. A command that cannot be decoded means
// the log is corrupt and Apply panics, as Nomad's FSM does: a server must
// stop rather than diverge. A command that breaks a rule returns the error
// as its response and changes nothing.
//
// FSM knows nothing of Raft: the store (scheduler/store) adapts it to
// raft.FSM, handing it each log entry's bytes and streaming its snapshots.
type FSM struct {
	mu     sync.RWMutex
	ledger *Ledger
	// applied is signalled after every Apply and Restore, so long polls can wake.
	applied func()
	// appliedByType counts the commands applied since start, by type byte:
	// which shapes the log carries (see AppliedOfType).
	appliedByType [256]atomic.Uint64
	changes       atomic.Uint64 // see Changes
	credChanges   atomic.Uint64 // see CredentialChanges
	credSeen      uint64        // the ledger's credChanges when credChanges last moved (under mu)
}

// NewFSM returns an FSM over an empty ledger.
func NewFSM() *FSM {
	return &FSM{ledger: NewLedger(), applied: func() {}}
}

// AppliedOfType is how many commands of type t (a type byte, batched or
// not) this FSM applied since it started: it shows, for one, whether the
// leader proposes leases and completions in their compact or JSON shape.
func (f *FSM) AppliedOfType(t int) uint64 { return f.appliedByType[uint8(t)].Load() }

// OnApply sets fn to be called after every Apply and Restore (outside the
// lock). Set it before the FSM is used.
func (f *FSM) OnApply(fn func()) { f.applied = fn }

// Apply applies one log entry (a command or a batch of them) and returns
// its response: the applyX's value, or a []any for a batch.
func (f *FSM) Apply(entry []byte) any {
	f.mu.Lock()
	resp := f.applyEntry(entry)
	f.changes.Add(1)
	if f.ledger.credChanges != f.credSeen {
		f.credSeen = f.ledger.credChanges
		f.credChanges.Add(1)
	}
	freed := f.ledger.freedTasks >= releaseAfterTasks
	if freed {
		f.ledger.freedTasks = 0
	}
	f.mu.Unlock()
	if freed {
		releaseMemory()
	}
	f.applied()
	return resp
}

// releaseAfterTasks is how many purged tasks (some 200 bytes each, more
// with results) make the FSM hand the freed memory back to the OS.
const releaseAfterTasks = 100_000

// releasing is set while a release runs, so purges in a row start one.
var releasing atomic.Bool

// releaseMemory returns freed heap to the OS now, in the background. Go's
// scavenger would too, but only after the next collection, which an idle
// server may not run for minutes: a 1M-task job's purge left a dev
// process's RSS at 371 MiB (31 MiB before the job) for two minutes.
func releaseMemory() {
	if !releasing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer releasing.Store(false)
		debug.FreeOSMemory()
	}()
}

func (f *FSM) applyEntry(data []byte) any {
	if len(data) == 0 {
		panic("ledger: empty command")
	}
	if CommandType(data[0]) != cmdBatch {
		return f.applyCommand(data)
	}
	cmds, err := decodeBatch(data[1:])
	if err != nil {
		panic(fmt.Sprintf("ledger: %v", err))
	}
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = f.applyCommand(c)
	}
	return out
}

func (f *FSM) applyCommand(data []byte) any {
	c, err := DecodeCommand(data)
	if err != nil {
		panic(fmt.Sprintf("ledger: %v", err))
	}
	f.appliedByType[data[0]].Add(1)
	l := f.ledger
	defer l.compactMaps()
	switch c := c.(type) {
	case nil:
		return nil // an ignorable type this server does not know
	case *PutBlobCommand:
		return l.applyPutBlob(c)
	case *putBlobV1:
		return l.applyPutBlobV1(c)
	case *SubmitJobCommand:
		return l.applySubmitJob(c)
	case *submitJobV1:
		return l.applySubmitJobV1(c)
	case *submitJobV2:
		return l.applySubmitJobV2(c)
	case *LeaseTasksCommand:
		return l.applyLeaseTasks(c)
	case *CompleteTasksCommand:
		return l.applyCompleteTasks(c)
	case *ExpireLeasesCommand:
		return l.applyExpireLeases(c)
	case *ReleaseTasksCommand:
		return l.applyReleaseTasks(c)
	case *CancelJobCommand:
		return l.applyCancelJob(c)
	case *UpsertPeerCommand:
		return l.applyUpsertPeer(c)
	case *PutManifestCommand:
		return l.applyPutManifest(c)
	case *CommitManifestCommand:
		return l.applyCommitManifest(c)
	case *PurgeJobCommand:
		return l.applyPurgeJob(c)
	case *UnpinBlobCommand:
		return l.applyUnpinBlob(c)
	case *UnpinOwnCommand:
		return l.applyUnpinOwn(c)
	case *DeleteBlobsCommand:
		return l.applyDeleteBlobs(c)
	case *CreateCredentialCommand:
		return l.applyCreateCredential(c)
	case *RevokeCredentialCommand:
		return l.applyRevokeCredential(c)
	case *JoinWorkerCommand:
		return l.applyJoinWorker(c)
	case *TrustPeerCommand:
		return l.applyTrustPeer(c)
	case *RenewLeasesCommand:
		return l.applyRenewLeases(c)
	case *SetModuleEngineCommand:
		return l.applySetModuleEngine(c)
	}
	panic(fmt.Sprintf("ledger: no apply for %s", c.Type()))
}

// View runs fn with the ledger read-locked. fn must not keep references
// past its return, except to values the ledger never changes in place
// (manifests, blob and output bytes).
func (f *FSM) View(fn func(*Ledger)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.ledger)
}

// Snapshot captures the ledger for a snapshot. Call it between Applies (as
// Raft does); it copies only what Apply may change in place (job headers
// and task structs; blob and output bytes are never mutated), and the
// returned Snapshot streams while Apply goes on.
func (f *FSM) Snapshot() *Snapshot {
	f.mu.Lock() // freeze bumps the generation
	defer f.mu.Unlock()
	return f.ledger.freeze()
}

// Restore reads a snapshot stream record by record into a fresh ledger,
// then swaps it in.
func (f *FSM) Restore(r io.Reader) error {
	l, err := ReadSnapshot(r)
	if err != nil {
		return fmt.Errorf("restore ledger: %w", err)
	}
	f.mu.Lock()
	f.ledger = l
	f.changes.Add(1)
	f.credSeen = l.credChanges
	f.credChanges.Add(1) // another ledger: whatever it holds, a check must look again
	f.mu.Unlock()
	f.applied()
	return nil
}

// Changes counts the Applies and Restores so far: while it stands still
// the ledger has not changed, so a reader may keep what it derived from it
// (a worker stream keeps its credential's check) without a View. It is no
// replicated state and differs from server to server.
func (f *FSM) Changes() uint64 { return f.changes.Load() }

// CredentialChanges counts the Applies that changed a credential (created,
// revoked, a join token used) and the Restores so far: while it stands
// still every credential reads as it did, so a worker stream keeps its
// credential's check without a View. Changes would serve too, but at
// 10,000 workers it moves hundreds of times a second (every commit of
// leases and reports), and each stream then checked its credential again
// for nearly every lease. Like Changes, no replicated state.
func (f *FSM) CredentialChanges() uint64 { return f.credChanges.Load() }

// StateHash is a canonical hash of the ledger: servers that applied the same
// log have the same hash.
func (f *FSM) StateHash() string {
	snap := f.Snapshot()
	h := sha256.New()
	if err := snap.Write(h); err != nil {
		panic(err) // hash writes do not fail
	}
	return hex.EncodeToString(h.Sum(nil))
}
