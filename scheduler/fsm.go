package scheduler

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM applies ledger commands from the Raft log. Apply routes each command
// type to a short applyX on the Ledger. A command that cannot be decoded means
// the log is corrupt and Apply panics, as Nomad's FSM does: a server must
// stop rather than diverge. A command that breaks a rule returns the error as
// its response and changes nothing.
type FSM struct {
	mu     sync.RWMutex
	ledger *Ledger
	// applied is signalled after every Apply, so long polls can wake.
	applied func()
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM over an empty ledger.
func NewFSM() *FSM {
	return &FSM{ledger: NewLedger(), applied: func() {}}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(log *raft.Log) any {
	if log.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	resp := f.applyEntry(log.Data)
	f.mu.Unlock()
	f.applied()
	return resp
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
	t, body := CommandType(data[0]), data[1:]
	l := f.ledger
	switch t {
	case cmdPutBlob:
		return l.applyPutBlob(decode[PutBlobCommand](t, body))
	case cmdSubmitJob:
		return l.applySubmitJob(decode[SubmitJobCommand](t, body))
	case cmdLeaseTasks:
		return l.applyLeaseTasks(decode[LeaseTasksCommand](t, body))
	case cmdCompleteTask:
		return l.applyCompleteTasks(decode[CompleteTasksCommand](t, body))
	case cmdExpireLeases:
		return l.applyExpireLeases(decode[ExpireLeasesCommand](t, body))
	case cmdReleaseTasks:
		return l.applyReleaseTasks(decode[ReleaseTasksCommand](t, body))
	case cmdCancelJob:
		return l.applyCancelJob(decode[CancelJobCommand](t, body))
	case cmdUpsertPeer:
		return l.applyUpsertPeer(decode[UpsertPeerCommand](t, body))
	case cmdPutManifest:
		return l.applyPutManifest(decode[PutManifestCommand](t, body))
	case cmdPurgeJob:
		return l.applyPurgeJob(decode[PurgeJobCommand](t, body))
	case cmdUnpinBlob:
		return l.applyUnpinBlob(decode[UnpinBlobCommand](t, body))
	case cmdDeleteBlobs:
		return l.applyDeleteBlobs(decode[DeleteBlobsCommand](t, body))
	}
	if t&IgnorableFlag != 0 {
		return nil
	}
	panic(fmt.Sprintf("ledger: unknown command type %d", uint8(t)))
}

func decode[T any](t CommandType, body []byte) *T {
	var c T
	if err := json.Unmarshal(body, &c); err != nil {
		panic(fmt.Sprintf("ledger: decode %s: %v", t, err))
	}
	return &c
}

// View runs fn with the ledger read-locked. fn must not keep references.
func (f *FSM) View(fn func(*Ledger)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.ledger)
}

// Snapshot records types, in stream order. Append-only like command types.
const (
	recHeader   byte = 1
	recBlob     byte = 2
	recJob      byte = 3
	recTasks    byte = 4
	recPeer     byte = 5
	recEnd      byte = 6
	recManifest byte = 7
	recBlobMeta byte = 8

	snapshotVersion = 1
)

// Snapshot implements raft.FSM. Raft calls it between Applies; it copies only
// what Apply may change in place (job headers and task structs; blob and
// output bytes are never mutated) and Persist streams it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock() // freeze bumps the generation
	defer f.mu.Unlock()
	return f.ledger.freeze(), nil
}

// Restore implements raft.FSM: it reads the stream record by record into a
// fresh ledger, then swaps it in.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	l, err := readLedger(bufio.NewReaderSize(rc, 1<<20))
	if err != nil {
		return fmt.Errorf("restore ledger: %w", err)
	}
	f.mu.Lock()
	f.ledger = l
	f.mu.Unlock()
	f.applied()
	return nil
}

// StateHash is a canonical hash of the ledger: servers that applied the same
// log have the same hash.
func (f *FSM) StateHash() string {
	f.mu.Lock()
	frozen := f.ledger.freeze()
	f.mu.Unlock()
	h := sha256.New()
	if err := frozen.write(h); err != nil {
		panic(err) // hash writes do not fail
	}
	return hex.EncodeToString(h.Sum(nil))
}

type frozenLedger struct {
	blobs     []PutBlobCommand
	manifests []*storage.Manifest
	meta      []blobMeta
	jobs      []frozenJob
	peers     []peer
}

type frozenJob struct {
	header jobRecord
	tasks  taskTable // shares chunks with the live ledger, copy-on-write
}

// jobRecord is a job's snapshot header; its tasks follow in recTasks records.
type jobRecord struct {
	ID          string          `json:"id"`
	Spec        json.RawMessage `json:"spec"`
	Seq         uint64          `json:"seq"`
	SubmittedAt int64           `json:"submitted_at"`
	FinishedAt  int64           `json:"finished_at,omitempty"`
	Cancelled   bool            `json:"cancelled,omitempty"`
	Fresh       int             `json:"fresh"`
	Requeued    []int           `json:"requeued,omitempty"`
}

// freeze captures the ledger for a snapshot without copying its tasks: the
// frozen view shares task chunks with the live ledger, and bumping gen makes
// Apply copy a chunk before it next changes it. So a snapshot costs one
// chunk copy per chunk touched while it streams, not a second ledger.
func (l *Ledger) freeze() *frozenLedger {
	l.gen++
	fz := &frozenLedger{}
	for _, h := range sortedKeys(l.blobs) {
		fz.blobs = append(fz.blobs, PutBlobCommand{Hash: h, Data: l.blobs[h]})
	}
	for _, h := range sortedKeys(l.manifests) {
		fz.manifests = append(fz.manifests, l.manifests[h]) // replaced, never changed in place
	}
	for _, h := range sortedKeys(l.meta) {
		fz.meta = append(fz.meta, l.meta[h])
	}
	for _, j := range l.order {
		spec, _ := json.Marshal(j.Spec)
		fz.jobs = append(fz.jobs, frozenJob{
			header: jobRecord{ID: j.ID, Spec: spec, Seq: j.Seq, SubmittedAt: j.SubmittedAt, FinishedAt: j.FinishedAt,
				Cancelled: j.Cancelled, Fresh: j.fresh, Requeued: append([]int(nil), j.requeued...)},
			tasks: j.Tasks.share(),
		})
	}
	for _, id := range sortedKeys(l.peers) {
		fz.peers = append(fz.peers, *l.peers[id])
	}
	return fz
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Persist implements raft.FSMSnapshot.
func (fz *frozenLedger) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	if err := fz.write(w); err != nil {
		sink.Cancel()
		return err
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (fz *frozenLedger) Release() {}

// write streams the ledger as records: [type][uvarint len][JSON].
func (fz *frozenLedger) write(w io.Writer) error {
	rw := &recordWriter{w: w}
	rw.put(recHeader, map[string]int{"version": snapshotVersion})
	for i := range fz.blobs {
		rw.put(recBlob, &fz.blobs[i])
	}
	for _, m := range fz.manifests {
		rw.put(recManifest, m)
	}
	for i := range fz.meta {
		rw.put(recBlobMeta, &fz.meta[i])
	}
	for i := range fz.jobs {
		j := &fz.jobs[i]
		rw.put(recJob, &j.header)
		for _, chunk := range j.tasks.chunks {
			rw.put(recTasks, chunk.tasks)
		}
	}
	for i := range fz.peers {
		rw.put(recPeer, &fz.peers[i])
	}
	rw.put(recEnd, nil)
	return rw.err
}

type recordWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (rw *recordWriter) put(t byte, v any) {
	if rw.err != nil {
		return
	}
	body, err := json.Marshal(v)
	if err != nil {
		rw.err = err
		return
	}
	rw.buf = append(rw.buf[:0], t)
	rw.buf = binary.AppendUvarint(rw.buf, uint64(len(body)))
	rw.buf = append(rw.buf, body...)
	_, rw.err = rw.w.Write(rw.buf)
}

var errBadSnapshot = errors.New("corrupt snapshot")

func readLedger(r *bufio.Reader) (*Ledger, error) {
	l := NewLedger()
	var cur *job
	for {
		t, body, err := readRecord(r)
		if err != nil {
			return nil, err
		}
		switch t {
		case recHeader:
			var h map[string]int
			if err := json.Unmarshal(body, &h); err != nil || h["version"] != snapshotVersion {
				return nil, fmt.Errorf("%w: unsupported header %s", errBadSnapshot, body)
			}
		case recBlob:
			var b PutBlobCommand
			if err := json.Unmarshal(body, &b); err != nil {
				return nil, fmt.Errorf("%w: blob: %v", errBadSnapshot, err)
			}
			l.blobs[b.Hash] = b.Data
		case recManifest:
			m, err := storage.DecodeManifest(body)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", errBadSnapshot, err)
			}
			l.setManifest(m.Hash, m) // also rebuilds the shard index
		case recBlobMeta:
			var m blobMeta
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, fmt.Errorf("%w: blob meta: %v", errBadSnapshot, err)
			}
			l.meta[m.Hash] = m
		case recJob:
			if cur, err = l.restoreJob(body); err != nil {
				return nil, err
			}
		case recTasks:
			if err := l.restoreTasks(cur, body); err != nil {
				return nil, err
			}
		case recPeer:
			var p peer
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, fmt.Errorf("%w: peer: %v", errBadSnapshot, err)
			}
			l.peers[p.ID] = &p
			if p.isAliveWorker() {
				l.aliveWorkers++
			}
		case recEnd:
			return l, l.checkRestored()
		default:
			return nil, fmt.Errorf("%w: unknown record type %d", errBadSnapshot, t)
		}
	}
}

func readRecord(r *bufio.Reader) (byte, []byte, error) {
	t, err := r.ReadByte()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<31 {
		return 0, nil, fmt.Errorf("%w: record length: %v", errBadSnapshot, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("%w: record body: %v", errBadSnapshot, err)
	}
	return t, body, nil
}

func (l *Ledger) restoreJob(body []byte) (*job, error) {
	var h jobRecord
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("%w: job: %v", errBadSnapshot, err)
	}
	j := &job{ID: h.ID, Seq: h.Seq, SubmittedAt: h.SubmittedAt, FinishedAt: h.FinishedAt,
		Cancelled: h.Cancelled, fresh: h.Fresh, requeued: h.Requeued}
	if err := json.Unmarshal(h.Spec, &j.Spec); err != nil {
		return nil, fmt.Errorf("%w: job %s spec: %v", errBadSnapshot, h.ID, err)
	}
	j.Tasks = taskTable{gen: &l.gen}
	l.jobs[j.ID] = j
	l.order = append(l.order, j)
	l.refs.addSpec(&j.Spec, +1) // rebuilds the derived reference counts
	if h.Seq >= l.nextSeq {
		l.nextSeq = h.Seq + 1
	}
	return j, nil
}

func (l *Ledger) restoreTasks(j *job, body []byte) error {
	if j == nil {
		return fmt.Errorf("%w: tasks before any job", errBadSnapshot)
	}
	var ts []task
	if err := json.Unmarshal(body, &ts); err != nil {
		return fmt.Errorf("%w: job %s tasks: %v", errBadSnapshot, j.ID, err)
	}
	for _, t := range ts {
		idx := j.Tasks.len()
		j.Tasks.appendTask(t)
		j.count(t.State, +1)
		l.refs.add(t.StdoutRef, +1)
		if t.State == tasks.TaskLeased {
			l.leased[taskKey{j.ID, idx}] = t.Expiry
		}
	}
	return nil
}

func (j *job) count(s tasks.TaskState, d int) {
	switch s {
	case tasks.TaskQueued:
		j.nQueued += d
	case tasks.TaskLeased:
		j.nLeased += d
	case tasks.TaskDone:
		j.nDone += d
	case tasks.TaskFailed:
		j.nFailed += d
	}
}

func (l *Ledger) checkRestored() error {
	for _, j := range l.order {
		if j.Tasks.len() != j.Spec.Tasks {
			return fmt.Errorf("%w: job %s has %d of %d tasks", errBadSnapshot, j.ID, j.Tasks.len(), j.Spec.Tasks)
		}
	}
	return nil
}
