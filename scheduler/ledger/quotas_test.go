package ledger

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// credentialWith creates a credential of role with quotas (nil: the role's
// defaults, as for a credential created before quotas).
func (a *applier) credentialWith(id, role string, q *api.Quotas) {
	a.t.Helper()
	if resp := a.apply(&CreateCredentialCommand{Credential: Credential{ID: id, Role: role, Hash: "h-" + id, Quotas: q}, Now: a.now}); resp != nil {
		a.t.Fatalf("create %s: %v", id, resp)
	}
}

func quotaSpec(n int) tasks.JobSpec {
	return tasks.JobSpec{Name: "q", ModuleHash: storage.Hash(testModule), Tasks: n, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: 1 << 10, Retries: 1}
}

func (a *applier) submitAs(owner, id string, spec tasks.JobSpec) error {
	a.t.Helper()
	switch resp := a.apply(&SubmitJobCommand{ID: id, Spec: spec, Now: a.now, Owner: owner}).(type) {
	case string:
		return nil
	case error:
		return resp
	default:
		a.t.Fatalf("submit %s: answer %v", id, resp)
		return nil
	}
}

func wantQuotaError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("got %v, want ErrQuotaExceeded", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// TestLedger_SubmitterDefaultQuotaRefusesTenMillionTasks: a submitter with
// the default quotas asks for a 10M-task job (within the field's range)
// and is refused before any task is made: the heap does not grow by what
// the job would take (~2 GB), and no job exists.
func TestLedger_SubmitterDefaultQuotaRefusesTenMillionTasks(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("t-sub", api.CredSubmitter, nil)
	before := heapInUse()
	err := a.submitAs("t-sub", "huge", quotaSpec(tasks.MaxTasks))
	grew := int64(heapInUse()) - int64(before)
	wantQuotaError(t, err, "credential t-sub's max_tasks_per_job is 100000", "the job has 10000000 tasks")
	if grew > 16<<20 {
		t.Errorf("refusing the job grew the heap by %d MiB", grew>>20)
	}
	if a.job("huge") != nil {
		t.Fatal("the refused job exists")
	}
	if err := a.submitAs("t-sub", "ok", quotaSpec(100_000)); err != nil {
		t.Fatalf("a job at the quota: %v", err)
	}
	if err := a.submitAs("", "op", quotaSpec(200_000)); err != nil {
		t.Fatalf("an operator's (no owner) large job: %v", err)
	}
}

// TestLedger_InFlightAndQueuedQuotasCountUnfinishedWork: the tasks and
// jobs a credential has unfinished bound what it may add; finishing work
// (here, cancelling it) gives the room back; another credential is not
// counted against it.
func TestLedger_InFlightAndQueuedQuotasCountUnfinishedWork(t *testing.T) {
	a := newApplier(t)
	q := api.SubmitterQuotas
	q.MaxTasksInFlight, q.MaxJobsQueued = 10, 2
	a.credentialWith("t-a", api.CredSubmitter, &q)
	a.credentialWith("t-b", api.CredSubmitter, &q)
	if err := a.submitAs("t-a", "a1", quotaSpec(6)); err != nil {
		t.Fatal(err)
	}
	wantQuotaError(t, a.submitAs("t-a", "a2", quotaSpec(5)), "max_tasks_in_flight is 10", "6 tasks of it are unfinished and the job adds 5")
	if err := a.submitAs("t-b", "b1", quotaSpec(10)); err != nil {
		t.Fatalf("another credential's job counted against t-a's: %v", err)
	}
	if err := a.submitAs("t-a", "a2", quotaSpec(4)); err != nil {
		t.Fatal(err)
	}
	wantQuotaError(t, a.submitAs("t-a", "a3", quotaSpec(0+1)), "max_jobs_queued is 2", "2 jobs of it are unfinished")
	a.apply(&CancelJobCommand{ID: "a1", Now: a.now})
	if err := a.submitAs("t-a", "a3", quotaSpec(6)); err != nil {
		t.Fatalf("after cancelling a1: %v", err)
	}
	var use api.QuotaUsage
	a.fsm.View(func(l *Ledger) { use = l.Usage("t-a") })
	if use.JobsQueued != 2 || use.TasksInFlight != 10 {
		t.Fatalf("usage %+v, want 2 jobs and 10 tasks", use)
	}
}

// TestLedger_PriorityAndTimeoutQuotas: a submitter's jobs may not rise
// above priority 0 or run longer than a day per attempt unless an operator
// allowed it; an operator's may use the whole range.
func TestLedger_PriorityAndTimeoutQuotas(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("t-sub", api.CredSubmitter, nil)
	q := api.SubmitterQuotas
	q.MaxPriority, q.MaxTimeout = 50, 72*time.Hour
	a.credentialWith("t-trusted", api.CredSubmitter, &q)
	a.credentialWith("t-op", api.CredOperator, nil)

	high := quotaSpec(1)
	high.Priority = 1
	wantQuotaError(t, a.submitAs("t-sub", "p1", high), "max_priority is 0", "priority 1")
	high.Priority = -100
	if err := a.submitAs("t-sub", "p2", high); err != nil {
		t.Fatalf("lowering priority: %v", err)
	}
	high.Priority = 50
	if err := a.submitAs("t-trusted", "p3", high); err != nil {
		t.Fatal(err)
	}
	high.Priority = tasks.MaxPriority
	if err := a.submitAs("t-op", "p4", high); err != nil {
		t.Fatal(err)
	}

	long := quotaSpec(1)
	long.Timeout = 25 * time.Hour
	wantQuotaError(t, a.submitAs("t-sub", "t1", long), "max_timeout is 24h0m0s", "timeout 25h0m0s")
	if err := a.submitAs("t-trusted", "t2", long); err != nil {
		t.Fatal(err)
	}
	long.Timeout = math.MaxInt64
	err := a.submitAs("t-op", "t3", long)
	if !errors.Is(err, tasks.ErrInvalidSpec) || !strings.Contains(err.Error(), "at most 720h0m0s") {
		t.Fatalf("an overflowing timeout from an operator: %v, want the range refused", err)
	}
}

// TestLedger_BlobQuotasCountInlineAndPinnedBytes: a credential's inline
// blobs and its pins count against its quotas, once per blob; unpinning
// and garbage collection give the room back; a restored ledger counts the
// same.
func TestLedger_BlobQuotasCountInlineAndPinnedBytes(t *testing.T) {
	a := newApplier(t)
	q := api.SubmitterQuotas
	q.MaxInlineBytes, q.MaxPinnedBytes = 100, 70
	a.credentialWith("t-sub", api.CredSubmitter, &q)
	put := func(data string, pin bool) any {
		return a.apply(&PutBlobCommand{Hash: storage.Hash([]byte(data)), Data: []byte(data), Pin: pin, Owner: "t-sub", Now: 1})
	}
	b1, b2 := strings.Repeat("1", 60), strings.Repeat("2", 60)
	if resp := put(b1, true); resp != nil {
		t.Fatal(resp)
	}
	if resp := put(b1, true); resp != nil {
		t.Fatalf("the same blob again is not new use: %v", resp)
	}
	err, _ := put(b2, false).(error)
	wantQuotaError(t, err, "max_inline_bytes is 100", "it holds 60 bytes of inline blobs and this one has 60")
	a.apply(&UnpinBlobCommand{Hash: storage.Hash([]byte(b1))})
	a.apply(&DeleteBlobsCommand{Hashes: []string{storage.Hash([]byte(b1))}})
	if resp := put(b2, true); resp != nil {
		t.Fatalf("after b1 was collected: %v", resp)
	}
	b3 := strings.Repeat("3", 20)
	err, _ = put(b3, true).(error)
	wantQuotaError(t, err, "max_pinned_bytes is 70", "it has 60 bytes pinned and this blob has 20")
	if resp := put(b3, false); resp != nil {
		t.Fatalf("unpinned within the inline quota: %v", resp)
	}
	var use, restored api.QuotaUsage
	a.fsm.View(func(l *Ledger) { use = l.Usage("t-sub") })
	snapshotInto(t, a.fsm).View(func(l *Ledger) { restored = l.Usage("t-sub") })
	if use.InlineBytes != 80 || use.PinnedBytes != 60 || restored != use {
		t.Fatalf("usage %+v, restored %+v; want 80 inline and 60 pinned bytes in both", use, restored)
	}
}

// TestLedger_CommandsOfOldLogsApplyAsCommitted: a submit and a put encoded
// with the pre-quota types (3, 2), as old logs hold them, apply under the
// rules they were committed under (retries 1000, priority 1000, a timeout
// that overflows, a large pinned blob), so replaying an old log loses
// nothing; and a lease of that timeout expires at the end of time, never
// in the past.
func TestLedger_CommandsOfOldLogsApplyAsCommitted(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("t-sub", api.CredSubmitter, nil)
	spec := quotaSpec(tasks.MaxTasks / 100)
	spec.Retries, spec.Priority, spec.Timeout = 1000, 1000, math.MaxInt64
	old, _ := json.Marshal(&SubmitJobCommand{ID: "old", Spec: spec, Now: a.now, Owner: "t-sub"})
	if resp := a.fsm.Apply(append([]byte{byte(cmdSubmitJobV1)}, old...)); resp != "old" {
		t.Fatalf("an old log's submit: %v", resp)
	}
	big := make([]byte, 1<<20)
	put, _ := json.Marshal(&PutBlobCommand{Hash: storage.Hash(big), Data: big, Pin: true, Owner: "t-sub"})
	if resp := a.fsm.Apply(append([]byte{byte(cmdPutBlobV1)}, put...)); resp != nil {
		t.Fatalf("an old log's put: %v", resp)
	}
	g := a.lease("w1", 1)
	if len(g) != 1 || g[0].Expiry != math.MaxInt64 {
		t.Fatalf("grants %+v, want one expiring at the largest time", g)
	}
	var expired []api.TaskRef
	a.fsm.View(func(l *Ledger) { expired = l.ExpiredLeases(a.now + int64(time.Hour)) })
	if len(expired) != 0 {
		t.Fatalf("an hour later %v expired", expired)
	}
}

func TestLeaseExpiry_Saturates(t *testing.T) {
	cases := []struct {
		now     int64
		timeout time.Duration
		slack   int64
		want    int64
	}{
		{10, 5, 1, 16},
		{math.MaxInt64 - 10, time.Duration(math.MaxInt64), 10, math.MaxInt64},
		{1 << 62, 1 << 62, 1 << 62, math.MaxInt64},
		{-5, -time.Duration(math.MaxInt64), -10, math.MinInt64},
	}
	for _, c := range cases {
		if got := leaseExpiry(c.now, c.timeout, c.slack); got != c.want {
			t.Errorf("leaseExpiry(%d, %d, %d) = %d, want %d", c.now, c.timeout, c.slack, got, c.want)
		}
	}
}

// TestLedger_InFlightQuotaCountsEachPlannedReplica: a task of a job with
// replicas = R counts R times against max_tasks_in_flight, so asking for
// replicas cannot multiply the work a quota allows; an adaptive job counts
// its checked plan (2).
func TestLedger_InFlightQuotaCountsEachPlannedReplica(t *testing.T) {
	a := newApplier(t)
	limit := api.DefaultQuotas(api.CredSubmitter)
	limit.MaxTasksInFlight = 100
	a.credentialWith("sub", api.CredSubmitter, &limit)
	replicated := func(n, r int) tasks.JobSpec {
		s := quotaSpec(n)
		s.Replicas = r
		return s
	}
	wantQuotaError(t, a.submitAs("sub", "r3", replicated(40, 3)), "max_tasks_in_flight", "the job adds 120")
	if err := a.submitAs("sub", "r2", replicated(40, 2)); err != nil {
		t.Fatalf("40 tasks of 2 replicas under a quota of 100: %v", err)
	}
	wantQuotaError(t, a.submitAs("sub", "plain", quotaSpec(21)), "max_tasks_in_flight", "80 tasks of it are unfinished")
	if err := a.submitAs("sub", "plain", quotaSpec(20)); err != nil {
		t.Fatalf("20 more single tasks beside 80 replicas: %v", err)
	}
	adaptive := quotaSpec(1)
	adaptive.Adaptive = true
	wantQuotaError(t, a.submitAs("sub", "adaptive", adaptive), "max_tasks_in_flight", "the job adds 2")
	var use api.QuotaUsage
	a.fsm.View(func(l *Ledger) { use = l.Usage("sub") })
	if use.TasksInFlight != 100 {
		t.Fatalf("usage shows %d tasks in flight, want 100 (40 x 2 + 20)", use.TasksInFlight)
	}
}
