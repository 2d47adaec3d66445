package ledger

import "github.com/peergrid/peergrid/tasks"

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

// addSpec counts (d = +1) or uncounts (d = -1) the blobs a job's spec names.
func (r blobRefs) addSpec(s *tasks.JobSpec, d int) {
	r.add(s.ModuleHash, d)
	for _, in := range s.Inputs {
		r.add(in.Hash, d)
	}
}

// replace moves a task's result reference from old to new (either may be "").
func (r blobRefs) replace(old, new string) {
	if old != new {
		r.add(old, -1)
		r.add(new, +1)
	}
}

// dropJob uncounts every reference j holds, when it is purged. It walks j's
// tasks: a cost in the size of what is removed, not of the ledger.
func (r blobRefs) dropJob(j *job) {
	r.addSpec(&j.Spec, -1)
	for i := 0; i < j.Tasks.len(); i++ {
		r.add(j.Tasks.at(i).StdoutRef, -1)
	}
}

// used reports whether any job references hash.
func (r blobRefs) used(hash string) bool { return r[hash] > 0 }
