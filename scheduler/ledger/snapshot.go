package ledger

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

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
	// recCredential is a credential (its secret's hash only).
	recCredential byte = 9

	snapshotVersion = 1
)

// Snapshot is the ledger frozen at one log index, to be written as a stream
// of records (Write) while Apply goes on.
type Snapshot struct {
	blobs     []PutBlobCommand
	manifests []*storage.Manifest
	meta      []BlobMeta
	jobs      []frozenJob
	peers     []Peer
	creds     []Credential
	// moduleEngines: the grid's engine per module (engines.go).
	moduleEngines []ModuleEngine
	nextSeq       uint64
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
	RequestID   string          `json:"request_id,omitempty"`
	Owner       string          `json:"owner,omitempty"`
}

// freeze captures the ledger for a snapshot without copying its tasks: the
// frozen view shares task chunks with the live ledger, and bumping gen makes
// Apply copy a chunk before it next changes it. So a snapshot costs one
// chunk copy per chunk touched while it streams, not a second ledger.
func (l *Ledger) freeze() *Snapshot {
	l.gen++
	fz := &Snapshot{}
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
				Cancelled: j.Cancelled, Fresh: j.fresh, Requeued: append([]int(nil), j.requeued...), RequestID: j.RequestID, Owner: j.Owner},
			tasks: j.Tasks.share(),
		})
	}
	for _, id := range sortedKeys(l.peers) {
		fz.peers = append(fz.peers, *l.peers[id])
	}
	fz.creds = l.Credentials() // copies: Apply changes them in place (uses, revoked)
	fz.moduleEngines = l.frozenModuleEngines()
	fz.nextSeq = l.nextSeq
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

// Write streams the ledger as records: [type][uvarint len][JSON]. It holds
// no lock: the snapshot shares only what Apply never changes in place.
func (fz *Snapshot) Write(w io.Writer) error {
	rw := &recordWriter{w: w}
	records := make([]taskRecord, 0, chunkSize)
	rw.put(recHeader, fz.header())
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
			rw.put(recTasks, chunk.records(records))
		}
	}
	for i := range fz.peers {
		rw.put(recPeer, &fz.peers[i])
	}
	for i := range fz.creds {
		rw.put(recCredential, &fz.creds[i])
	}
	fz.writeModuleEngines(rw)
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

// header is the snapshot's first record. It carries next_seq only when the
// restored jobs would not give it (the newest job was purged): a restored
// ledger must number the next job as the ledger it came from, and a header
// without it keeps the snapshots (and state hashes) of every other ledger
// as they were.
func (fz *Snapshot) header() map[string]int {
	h := map[string]int{"version": snapshotVersion}
	derived := uint64(0) // what restoreJob gives
	for _, j := range fz.jobs {
		derived = max(derived, j.header.Seq+1)
	}
	if fz.nextSeq != derived {
		h["next_seq"] = int(fz.nextSeq)
	}
	return h
}

// ErrBadSnapshot is returned for a snapshot stream that cannot be read.
var ErrBadSnapshot = errors.New("corrupt snapshot")

// ReadSnapshot reads a snapshot stream written by Snapshot.Write into a new
// ledger, rebuilding the derived indexes as it goes. A stream that is
// truncated, malformed or of an unknown version is refused with
// ErrBadSnapshot; it never panics.
func ReadSnapshot(rd io.Reader) (*Ledger, error) {
	r := bufio.NewReaderSize(rd, 1<<20)
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
			if err := json.Unmarshal(body, &h); err != nil || h["version"] != snapshotVersion || h["next_seq"] < 0 {
				return nil, fmt.Errorf("%w: unsupported header %s", ErrBadSnapshot, body)
			}
			l.nextSeq = uint64(h["next_seq"]) // restoreJob raises it past every job's seq
		case recBlob:
			var b PutBlobCommand
			if err := json.Unmarshal(body, &b); err != nil {
				return nil, fmt.Errorf("%w: blob: %v", ErrBadSnapshot, err)
			}
			l.blobs[b.Hash] = b.Data
		case recManifest:
			m, err := storage.DecodeManifest(body)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", ErrBadSnapshot, err)
			}
			l.setManifest(m.Hash, m) // also rebuilds the shard index
		case recBlobMeta:
			var m BlobMeta
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, fmt.Errorf("%w: blob meta: %v", ErrBadSnapshot, err)
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
			var p Peer
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, fmt.Errorf("%w: peer: %v", ErrBadSnapshot, err)
			}
			l.peers[p.ID] = &p
			if p.IsAliveWorker() {
				l.aliveWorkers++
			}
		case recCredential:
			var c Credential
			if err := json.Unmarshal(body, &c); err != nil {
				return nil, fmt.Errorf("%w: credential: %v", ErrBadSnapshot, err)
			}
			l.addCredential(&c)
		case recModuleEngine:
			if err := l.restoreModuleEngine(body); err != nil {
				return nil, err
			}
		case recEnd:
			l.chargeAllBlobs()
			return l, l.checkRestored()
		default:
			return nil, fmt.Errorf("%w: unknown record type %d", ErrBadSnapshot, t)
		}
	}
}

func readRecord(r *bufio.Reader) (byte, []byte, error) {
	t, err := r.ReadByte()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<31 {
		return 0, nil, fmt.Errorf("%w: record length: %v", ErrBadSnapshot, err)
	}
	// Read what arrives rather than allocate the length a corrupt header
	// claims (up to 2 GiB) before reading a byte.
	body, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil || uint64(len(body)) != n {
		return 0, nil, fmt.Errorf("%w: record body: %d of %d bytes: %v", ErrBadSnapshot, len(body), n, err)
	}
	return t, body, nil
}

func (l *Ledger) restoreJob(body []byte) (*job, error) {
	var h jobRecord
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("%w: job: %v", ErrBadSnapshot, err)
	}
	j := &job{ID: h.ID, Seq: h.Seq, SubmittedAt: h.SubmittedAt, FinishedAt: h.FinishedAt,
		Cancelled: h.Cancelled, fresh: h.Fresh, requeued: h.Requeued, RequestID: h.RequestID, Owner: h.Owner}
	if err := json.Unmarshal(h.Spec, &j.Spec); err != nil {
		return nil, fmt.Errorf("%w: job %s spec: %v", ErrBadSnapshot, h.ID, err)
	}
	j.Tasks = taskTable{gen: &l.gen}
	l.addJob(j) // rebuilds the derived indexes
	if h.Seq >= l.nextSeq {
		l.nextSeq = h.Seq + 1
	}
	return j, nil
}

func (l *Ledger) restoreTasks(j *job, body []byte) error {
	if j == nil {
		return fmt.Errorf("%w: tasks before any job", ErrBadSnapshot)
	}
	var recs []taskRecord
	if err := json.Unmarshal(body, &recs); err != nil {
		return fmt.Errorf("%w: job %s tasks: %v", ErrBadSnapshot, j.ID, err)
	}
	workers := map[string]string{}
	for i := range recs {
		idx := j.Tasks.len()
		shareNames(&recs[i], workers)
		t, err := fromRecord(&recs[i])
		if err != nil {
			return fmt.Errorf("%w: job %s task %d: %v", ErrBadSnapshot, j.ID, idx, err)
		}
		j.Tasks.appendTask(t, recs[i].Stdout)
		j.count(t.state(), +1)
		l.ref(j, t.stdoutRef(), +1)
		if t.state() == tasks.TaskDone {
			l.cache.add(j, idx)
		}
		if t.Rep != nil {
			l.restoreReplicas(j, idx, t.Rep)
		} else if t.state() == tasks.TaskLeased {
			l.holdLease(leaseKey(j, idx, t.attemptCount()), t.Worker)
		}
	}
	return nil
}

// shareNames makes a decoded task share, within a chunk, the worker names
// tasks applied live share instead of holding its own copies: a restored
// ledger should take no more memory than the one it was taken from.
func shareNames(rec *taskRecord, workers map[string]string) {
	for _, name := range []*string{&rec.Worker, &rec.FailedOn} {
		if *name == "" {
			continue
		}
		if shared, ok := workers[*name]; ok {
			*name = shared
		} else {
			workers[*name] = *name
		}
	}
}

// restoreReplicas indexes a restored task's replica leases and the
// results its votes keep.
func (l *Ledger) restoreReplicas(j *job, idx int, rs *replicaSet) {
	rs.gen = l.gen
	for _, r := range rs.Reps {
		if r.Verdict == vRunning {
			l.holdLease(leaseKey(j, idx, r.Attempt), r.Worker)
		}
		if r.Kept {
			l.ref(j, r.StdoutRef, +1)
		}
	}
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
			return fmt.Errorf("%w: job %s has %d of %d tasks", ErrBadSnapshot, j.ID, j.Tasks.len(), j.Spec.Tasks)
		}
	}
	return nil
}
