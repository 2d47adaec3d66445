package ledger

// blobRefs counts the references jobs hold to each blob: one per job for its
// module, one per input entry, and one per task whose stdout is a coded
// result blob (StdoutRef). Garbage collection asks it whether a blob is in
// use instead of walking every task of every job, which under the FSM write
// lock (applyDeleteBlobs) stalled Apply for a time growing with the ledger.
//
// Like shardIndex it is derived, never serialized: Apply keeps it exact at
// every change of a reference (submitJob, completeTask, purgeJob) and
// Restore rebuilds it as it reads jobs and tasks. A blob with no reference
// has no entry. The empty hash is never counted: it names no blob.
type blobRefs map[string]int

// add counts (d = +1) or uncounts (d = -1) one reference to hash.
func (r blobRefs) add(hash string, d int) {
	if hash == "" {
		return
	}
	if n := r[hash] + d; n > 0 {
		r[hash] = n
	} else {
		delete(r, hash)
	}
}

// The ledger counts each reference twice: in refs (is the blob used at
// all, for garbage collection) and in ownerRefs under the job's owner (may
// that submitter read it). These keep the two in step.

// ownerOf is the reference counts of j's owner, made on first use.
func (l *Ledger) ownerOf(j *job) blobRefs {
	if j.Owner == "" {
		return nil
	}
	r := l.ownerRefs[j.Owner]
	if r == nil {
		r = blobRefs{}
		l.ownerRefs[j.Owner] = r
	}
	return r
}

func (l *Ledger) ref(j *job, hash string, d int) {
	l.refs.add(hash, d)
	if r := l.ownerOf(j); r != nil {
		r.add(hash, d)
		if len(r) == 0 {
			delete(l.ownerRefs, j.Owner)
		}
	}
}

func (l *Ledger) refSpec(j *job, d int) {
	l.ref(j, j.Spec.ModuleHash, d)
	for _, in := range j.Spec.Inputs {
		l.ref(j, in.Hash, d)
	}
}

func (l *Ledger) replaceRef(j *job, old, new string) {
	if old != new {
		l.ref(j, old, -1)
		l.ref(j, new, +1)
	}
}

// dropRefs uncounts every reference j holds, when it is purged. It walks j's
// tasks: a cost in the size of what is removed, not of the ledger.
func (l *Ledger) dropRefs(j *job) {
	l.refSpec(j, -1)
	for i := 0; i < j.Tasks.len(); i++ {
		l.ref(j, j.Tasks.at(i).stdoutRef(), -1)
	}
}

// used reports whether any job references hash.
func (r blobRefs) used(hash string) bool { return r[hash] > 0 }
