package ledger

import (
	"errors"
	"fmt"
	"slices"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// Quotas: what one credential may ask of the grid (api.Quotas, kept on the
// credential). Apply enforces them on the commands that carry them
// (cmdSubmitJob, cmdPutBlob) from the ledger alone, so every server refuses
// the same commands. What a credential uses is derived from the ledger:
// unfinished jobs and tasks from the jobs, blob bytes from the blob meta
// (blobUse, kept exact at every change and rebuilt on restore).

// ErrQuotaExceeded is returned for a command past its owner's quota.
var ErrQuotaExceeded = errors.New("quota exceeded")

// blobUsage is what one credential's blobs count against its quotas.
type blobUsage struct {
	inline int64 // bytes of the inline blobs it put
	pinned int64 // bytes of the blobs (inline or coded) it pinned
}

// quotasOf are the quotas of the credential owner. A command with no owner
// (authentication disabled) or one not in the ledger (the servers' own
// --token before it is registered) comes from an operator: unlimited.
func (l *Ledger) quotasOf(owner string) api.Quotas {
	if cr := l.creds[owner]; cr != nil {
		return cr.Limits()
	}
	return api.UnlimitedQuotas
}

func quotaError(owner, quota string, limit int64, format string, a ...any) error {
	return fmt.Errorf("%w: credential %s's %s is %s; %s", ErrQuotaExceeded, owner, quota, api.QuotaText(limit), fmt.Sprintf(format, a...))
}

// checkSubmitQuotas refuses a job past its owner's quotas: its own size,
// priority and timeout, then what the owner's unfinished jobs already hold.
// The job's cached tasks (done at submit) are not in flight, and a job the
// cache answers whole is finished at once: it queues nothing.
func (l *Ledger) checkSubmitQuotas(c *SubmitJobCommand, cached int) error {
	if err := l.checkJobQuotas(c); err != nil {
		return err
	}
	q, s := l.quotasOf(c.Owner), &c.Spec
	if q.MaxJobsQueued == api.Unlimited && q.MaxTasksInFlight == api.Unlimited {
		return nil // an operator: skip the walk over the jobs
	}
	jobs, inFlight := l.unfinishedOf(c.Owner)
	adds := int64(s.Tasks-cached) * replicaWeight(s)
	switch {
	case adds > 0 && api.Exceeds(jobs+1, q.MaxJobsQueued):
		return quotaError(c.Owner, "max_jobs_queued", q.MaxJobsQueued, "%d jobs of it are unfinished", jobs)
	case api.Exceeds(inFlight+adds, q.MaxTasksInFlight):
		return quotaError(c.Owner, "max_tasks_in_flight", q.MaxTasksInFlight,
			"%d tasks of it are unfinished and the job adds %d (a task counts once per replica it plans)", inFlight, adds)
	}
	return nil
}

// checkJobQuotas refuses a job past the quotas on the job itself (its
// tasks, priority and timeout), which need nothing but the spec: Apply
// checks them before it hashes the tasks for the result cache, so a job
// too big for its owner costs nothing to refuse.
func (l *Ledger) checkJobQuotas(c *SubmitJobCommand) error {
	q, s := l.quotasOf(c.Owner), &c.Spec
	switch {
	case api.Exceeds(int64(s.Tasks), q.MaxTasksPerJob):
		return quotaError(c.Owner, "max_tasks_per_job", q.MaxTasksPerJob, "the job has %d tasks", s.Tasks)
	case s.Priority > q.MaxPriority:
		return quotaError(c.Owner, "max_priority", int64(q.MaxPriority), "the job asks for priority %d", s.Priority)
	case s.Timeout > q.MaxTimeout:
		return fmt.Errorf("%w: credential %s's max_timeout is %v; the job asks for timeout %v", ErrQuotaExceeded, c.Owner, q.MaxTimeout, s.Timeout)
	}
	return nil
}

// unfinishedOf counts owner's jobs not yet finished and their tasks not yet
// done or failed, each weighed by replicaWeight. It walks the jobs: a cost
// in their number, paid once per submit, and nothing to keep in step with
// every task's change.
func (l *Ledger) unfinishedOf(owner string) (jobs, tasks int64) {
	for _, j := range l.order {
		if j.Owner == owner && j.FinishedAt == 0 {
			jobs++
			tasks += int64(j.Tasks.len()-j.nDone-j.nFailed) * replicaWeight(&j.Spec)
		}
	}
	return jobs, tasks
}

// replicaWeight is what one unfinished task counts against
// max_tasks_in_flight: the replicas it plans to run (R; an adaptive job's
// checked plan, 2), each a task's worth of volunteers' CPU. Without it a
// submitter could have 16 times its quota run by asking for replicas = 16.
// A job without replicas weighs 1, so a log of jobs without replicas
// applies as it always did.
func replicaWeight(s *tasks.JobSpec) int64 {
	r, _, _ := s.Replication()
	return int64(r)
}

// checkBlobQuotas refuses a put that would take its owner past its inline
// or pinned bytes quota. What the owner already holds of this blob is not
// counted twice.
func (l *Ledger) checkBlobQuotas(c *PutBlobCommand) error {
	if c.Owner == "" {
		return nil
	}
	q, use, m := l.quotasOf(c.Owner), l.usageOf(c.Owner), l.meta[c.Hash]
	size := int64(len(c.Data))
	if _, inline := l.blobs[c.Hash]; !inline || !slices.Contains(m.Owners, c.Owner) {
		if api.Exceeds(use.inline+size, q.MaxInlineBytes) {
			return quotaError(c.Owner, "max_inline_bytes", q.MaxInlineBytes, "it holds %d bytes of inline blobs and this one has %d", use.inline, size)
		}
	}
	if c.Pin && !(m.Pinned && slices.Contains(m.PinnedBy, c.Owner)) {
		return l.checkPinQuota(c.Owner, size, q, use)
	}
	return nil
}

func (l *Ledger) checkPinQuota(owner string, size int64, q api.Quotas, use blobUsage) error {
	if api.Exceeds(use.pinned+size, q.MaxPinnedBytes) {
		return quotaError(owner, "max_pinned_bytes", q.MaxPinnedBytes, "it has %d bytes pinned and this blob has %d", use.pinned, size)
	}
	return nil
}

// CheckPinQuota tells the leader whether owner may pin the erasure-coded
// blob hash of size bytes. The leader asks before it proposes a pinned
// manifest: manifest commands predate quotas, so Apply does not check them.
func (l *Ledger) CheckPinQuota(owner, hash string, size int64) error {
	if m := l.meta[hash]; m.Pinned && slices.Contains(m.PinnedBy, owner) {
		return nil
	}
	return l.checkPinQuota(owner, size, l.quotasOf(owner), l.usageOf(owner))
}

// Usage is what a credential's jobs and blobs hold against its quotas.
func (l *Ledger) Usage(owner string) api.QuotaUsage {
	jobs, tasks := l.unfinishedOf(owner)
	use := l.usageOf(owner)
	return api.QuotaUsage{JobsQueued: jobs, TasksInFlight: tasks, InlineBytes: use.inline, PinnedBytes: use.pinned}
}

func (l *Ledger) usageOf(owner string) blobUsage {
	if u := l.blobUse[owner]; u != nil {
		return *u
	}
	return blobUsage{}
}

// chargeBlob adds (sign +1) or takes back (-1) what blob hash counts
// against its owners' quotas as the meta says now. Apply takes it back
// before it changes a blob's meta or bytes and adds it again after, so
// blobUse stays exact whatever changed.
func (l *Ledger) chargeBlob(hash string, sign int64) {
	m, ok := l.meta[hash]
	if !ok {
		return
	}
	if data, inline := l.blobs[hash]; inline {
		for _, o := range m.Owners {
			l.addUse(o, blobUsage{inline: sign * int64(len(data))})
		}
	}
	if m.Pinned {
		size := l.blobSize(hash)
		for _, o := range m.PinnedBy {
			l.addUse(o, blobUsage{pinned: sign * size})
		}
	}
}

func (l *Ledger) addUse(owner string, d blobUsage) {
	u := l.blobUse[owner]
	if u == nil {
		u = &blobUsage{}
		l.blobUse[owner] = u
	}
	u.inline += d.inline
	u.pinned += d.pinned
	if *u == (blobUsage{}) {
		delete(l.blobUse, owner)
	}
}

// blobSize is a blob's size in bytes: inline, or from its manifest.
func (l *Ledger) blobSize(hash string) int64 {
	if data, ok := l.blobs[hash]; ok {
		return int64(len(data))
	}
	if m := l.manifests[hash]; m != nil {
		return m.Size
	}
	return 0
}

// chargeAllBlobs rebuilds blobUse (restoring a snapshot).
func (l *Ledger) chargeAllBlobs() {
	for h := range l.meta {
		l.chargeBlob(h, +1)
	}
}
