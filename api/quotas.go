package api

import (
	"fmt"
	"time"

	"github.com/peergrid/peergrid/tasks"
)

// Unlimited in a count or byte quota means no limit.
const Unlimited = -1

// Quotas bound what one credential may ask of the grid. They are kept on
// the credential in the ledger and enforced there as the log is applied, so
// every server agrees (pinned bytes of erasure-coded blobs excepted: see the
// README's Security model). Counts and byte sizes are Unlimited (-1) or a
// limit; MaxPriority and MaxTimeout always hold a value within the bounds
// every job has (tasks.MinPriority..MaxPriority, up to tasks.TimeoutLimit).
type Quotas struct {
	// MaxTasksPerJob bounds one job's tasks.
	MaxTasksPerJob int64 `json:"max_tasks_per_job"`
	// MaxTasksInFlight bounds the unfinished (queued or leased) tasks of
	// all the credential's jobs together; a task of a job with replicas
	// counts once per replica it plans (R; 2 for "adaptive").
	MaxTasksInFlight int64 `json:"max_tasks_in_flight"`
	// MaxJobsQueued bounds the credential's jobs not yet finished.
	MaxJobsQueued int64 `json:"max_jobs_queued"`
	// MaxInlineBytes bounds the bytes of the blobs the credential put that
	// the ledger keeps inline (every server holds them in memory).
	MaxInlineBytes int64 `json:"max_inline_bytes"`
	// MaxPinnedBytes bounds the bytes of the blobs the credential pinned,
	// inline or erasure-coded.
	MaxPinnedBytes int64 `json:"max_pinned_bytes"`
	// MaxPriority is the highest priority the credential's jobs may have.
	MaxPriority int `json:"max_priority"`
	// MaxTimeout is the longest timeout the credential's jobs may have.
	MaxTimeout time.Duration `json:"max_timeout_ns"`
}

// The quotas a credential of each role gets unless an operator set others
// when creating it. They are part of the replicated state's meaning: a
// credential the ledger keeps without quotas (one created before quotas
// existed) has its role's defaults, so changing them would change how an
// old log applies. Change them only with a new command type.
var (
	// UnlimitedQuotas are an operator's: nothing bounded beyond the job
	// fields' own ranges.
	UnlimitedQuotas = Quotas{
		MaxTasksPerJob: Unlimited, MaxTasksInFlight: Unlimited, MaxJobsQueued: Unlimited,
		MaxInlineBytes: Unlimited, MaxPinnedBytes: Unlimited,
		MaxPriority: tasks.MaxPriority, MaxTimeout: tasks.TimeoutLimit,
	}
	// SubmitterQuotas are a submitter's: room for real batch work, not for
	// one user to take a server's memory or the queue's head.
	SubmitterQuotas = Quotas{
		MaxTasksPerJob:   100_000,
		MaxTasksInFlight: 1_000_000,
		MaxJobsQueued:    100,
		MaxInlineBytes:   64 << 20,
		MaxPinnedBytes:   10 << 30,
		MaxPriority:      0,
		MaxTimeout:       tasks.DefaultMaxTimeout,
	}
	// PeerQuotas are a worker's own credential's: it submits nothing and
	// pins nothing, and keeps at most 1 GiB of inline results (a worker
	// stores a result inline only when the storage peers fail it).
	PeerQuotas = Quotas{
		MaxTasksPerJob: 0, MaxTasksInFlight: 0, MaxJobsQueued: 0,
		MaxInlineBytes: 1 << 30, MaxPinnedBytes: 0,
		MaxPriority: 0, MaxTimeout: tasks.DefaultMaxTimeout,
	}
)

// DefaultQuotas are the quotas of a credential of role that no operator
// set: operators are unlimited, submitters and peers bounded, join tokens
// (which may only join) bounded to nothing.
func DefaultQuotas(role string) Quotas {
	switch role {
	case CredOperator:
		return UnlimitedQuotas
	case CredSubmitter:
		return SubmitterQuotas
	case CredPeer:
		return PeerQuotas
	default:
		return Quotas{MaxTimeout: tasks.DefaultMaxTimeout}
	}
}

// QuotaOverrides are the quotas an operator sets on a new credential; a
// nil field keeps the role's default.
type QuotaOverrides struct {
	MaxTasksPerJob   *int64         `json:"max_tasks_per_job,omitempty"`
	MaxTasksInFlight *int64         `json:"max_tasks_in_flight,omitempty"`
	MaxJobsQueued    *int64         `json:"max_jobs_queued,omitempty"`
	MaxInlineBytes   *int64         `json:"max_inline_bytes,omitempty"`
	MaxPinnedBytes   *int64         `json:"max_pinned_bytes,omitempty"`
	MaxPriority      *int           `json:"max_priority,omitempty"`
	MaxTimeout       *time.Duration `json:"max_timeout_ns,omitempty"`
}

// IsZero reports whether o overrides nothing.
func (o *QuotaOverrides) IsZero() bool { return *o == QuotaOverrides{} }

// Apply returns q with o's fields set over it, or an error naming the
// first field out of its range.
func (q Quotas) Apply(o *QuotaOverrides) (Quotas, error) {
	for _, f := range []struct {
		name string
		v    *int64
		dst  *int64
	}{
		{"max_tasks_per_job", o.MaxTasksPerJob, &q.MaxTasksPerJob},
		{"max_tasks_in_flight", o.MaxTasksInFlight, &q.MaxTasksInFlight},
		{"max_jobs_queued", o.MaxJobsQueued, &q.MaxJobsQueued},
		{"max_inline_bytes", o.MaxInlineBytes, &q.MaxInlineBytes},
		{"max_pinned_bytes", o.MaxPinnedBytes, &q.MaxPinnedBytes},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < Unlimited {
			return q, fmt.Errorf("%s = %d, want 0 or more (or -1: unlimited)", f.name, *f.v)
		}
		*f.dst = *f.v
	}
	if p := o.MaxPriority; p != nil {
		if *p < tasks.MinPriority || *p > tasks.MaxPriority {
			return q, fmt.Errorf("max_priority = %d, want %d..%d", *p, tasks.MinPriority, tasks.MaxPriority)
		}
		q.MaxPriority = *p
	}
	if d := o.MaxTimeout; d != nil {
		if *d <= 0 || *d > tasks.TimeoutLimit {
			return q, fmt.Errorf("max_timeout = %v, want more than 0 and at most %v", *d, tasks.TimeoutLimit)
		}
		q.MaxTimeout = *d
	}
	return q, nil
}

// Exceeds reports whether use is over limit (Unlimited: never).
func Exceeds(use, limit int64) bool { return limit != Unlimited && use > limit }

// QuotaText is a quota's value for people: "unlimited" or the number.
func QuotaText(limit int64) string {
	if limit == Unlimited {
		return "unlimited"
	}
	return fmt.Sprint(limit)
}

// QuotaUsage is what a credential's jobs and blobs hold against its quotas.
type QuotaUsage struct {
	JobsQueued    int64 `json:"jobs_queued"`
	TasksInFlight int64 `json:"tasks_in_flight"`
	InlineBytes   int64 `json:"inline_bytes"`
	PinnedBytes   int64 `json:"pinned_bytes"`
}
