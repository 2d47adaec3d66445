package api

import (
	"cmp"
	"time"

	"github.com/peergrid/peergrid/storage"

	"github.com/peergrid/peergrid/tasks"
)

// TokenHeader carries the cluster token on every request ("Bearer <token>" in
// Authorization works too).
const TokenHeader = "X-Peergrid-Token"

// RetryHeader on a 503 says the request was not applied, so a client may
// send it again (to another server) without doing anything twice.
const RetryHeader = "X-Peergrid-Retry"

// ErrorHeader repeats an error response's message (on one line), so an
// answer without a body (to HEAD) still says what was wrong.
const ErrorHeader = "X-Peergrid-Error"

// ForwardedHeader marks a request a follower forwarded to the leader, so it
// is never forwarded twice.
const ForwardedHeader = "X-Peergrid-Forwarded"

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// SubmitRequest submits a job whose module and inputs were uploaded as blobs.
type SubmitRequest struct {
	Spec tasks.JobSpec `json:"spec"`
	// RequestID names this submit (at most 128 bytes; the Go client sends
	// random ones): sending it again, after an answer was lost, returns the
	// job the first one created instead of creating another.
	RequestID string `json:"request_id,omitempty"`
}

// SubmitResponse names the new job.
type SubmitResponse struct {
	ID string `json:"id"`
}

// JobSummary is one line of a job listing.
type JobSummary struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	State       tasks.JobState `json:"state"`
	Priority    int            `json:"priority"`
	Tasks       int            `json:"total"`
	Queued      int            `json:"queued"`
	Leased      int            `json:"leased"`
	Done        int            `json:"done"`
	Failed      int            `json:"failed"`
	SubmittedAt time.Time      `json:"submitted_at"`
	FinishedAt  *time.Time     `json:"finished_at,omitempty"`
}

// JobStatus is a job with the state of each task.
type JobStatus struct {
	JobSummary
	Spec      tasks.JobSpec `json:"spec"`
	TaskStats []TaskStatus  `json:"tasks"`
	// GridEngine, for an "auto" job, is the engine the grid chose for its
	// module ("" while it has none).
	GridEngine string `json:"grid_engine,omitempty"`
}

// TaskStatus is one task's state, without its output.
type TaskStatus struct {
	Index     int             `json:"index"`
	State     tasks.TaskState `json:"state"`
	Attempts  int             `json:"attempts"`
	Worker    string          `json:"worker,omitempty"`
	ExitCode  *int            `json:"exit_code"`
	ErrorKind string          `json:"error_kind,omitempty"`
	Error     string          `json:"error"`
	Duration  time.Duration   `json:"duration_ns,omitempty"`
	Ignored   int             `json:"late_reports,omitempty"`
	Engine    string          `json:"engine,omitempty"` // the engine that ran the accepted attempt
	// CachedFrom names the task whose result this one took at submit (the
	// result cache) instead of running; nil for a task that ran.
	CachedFrom *CachedFrom `json:"cached_from,omitempty"`
	// Replicas are the task's replicas and their votes (the evidence);
	// nil for a task of a job without replicas.
	Replicas []ReplicaOutcome `json:"replicas,omitempty"`
}

// ReplicaOutcome is one replica of a task: the worker that ran it, its
// attempt, and its result hash (a successful result's vote) and verdict.
type ReplicaOutcome struct {
	Worker   string `json:"worker"`
	Attempt  int    `json:"attempt"`
	Hash     string `json:"hash,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Verdict  string `json:"verdict"`
}

// Replica verdicts.
const (
	VerdictRunning  = "running"  // leased, no report yet
	VerdictPending  = "pending"  // reported, no quorum yet
	VerdictAgreed   = "agreed"   // its hash is the task's accepted result
	VerdictOutvoted = "outvoted" // its hash lost the vote
	VerdictFailed   = "failed"   // the attempt failed (no vote), or its result was discarded
	VerdictExpired  = "expired"  // its lease expired (no vote)
)

// CachedFrom is the task a cached result was copied from, and how many
// agreeing results that result had (1 while every result is accepted on
// one worker's word).
type CachedFrom struct {
	Job    string `json:"job"`
	Index  int    `json:"index"`
	Agreed int    `json:"agreed"`
}

// TaskResult is a finished task with its output.
type TaskResult struct {
	TaskStatus
	Stdout     []byte `json:"stdout"`
	Stderr     []byte `json:"stderr"`
	StdoutBlob string `json:"stdout_blob,omitempty"` // stdout is this erasure-coded blob
}

// ResultsPage is a page of results, in task order from Offset.
type ResultsPage struct {
	Offset  int          `json:"offset"`
	Total   int          `json:"total"`
	Results []TaskResult `json:"results"`
}

// Peer is a server or worker known to the grid.
type Peer struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	Cores   int      `json:"cores"`
	State   string   `json:"state"` // alive | down | draining
	// Running is how many tasks the worker's last heartbeat to the leader
	// said it was running; where the answering server has no heartbeat of
	// it (a new leader, a stale read), its leases, as Leased.
	Running int `json:"running"`
	// Leased is how many task leases the worker holds: those it runs and
	// those it fetched ahead of a free core.
	Leased int `json:"leased"`
	// Done counts the worker's accepted successful results, Failed its
	// accepted reports of failed attempts.
	Done   int `json:"done"`
	Failed int `json:"failed,omitempty"`
	// CPUSeconds is a worker's credit: the run time of its accepted
	// results, in seconds.
	CPUSeconds float64   `json:"cpu_seconds,omitempty"`
	LastSeen   time.Time `json:"last_seen"`
	Engines    []string  `json:"engines,omitempty"` // a worker's WebAssembly engines
	// The worker's record in replicated tasks: results that agreed with a
	// quorum, results outvoted, agreed results since its last outvoted
	// one, and whether it is distrusted (leased nothing until an operator
	// trusts it again).
	Agreed     int  `json:"agreed,omitempty"`
	Outvoted   int  `json:"outvoted,omitempty"`
	Streak     int  `json:"streak,omitempty"`
	Distrusted bool `json:"distrusted,omitempty"`
}

// Peer roles.
const (
	RoleServer  = "server"
	RoleWorker  = "worker"
	RoleStorage = "storage"
)

// Peer states.
const (
	PeerAlive    = "alive"
	PeerDown     = "down"
	PeerDraining = "draining"
)

// LeaseRequest asks for up to Max tasks; with Wait the server holds the
// request until work is queued or Wait passes (a long poll). It may carry
// the worker's finished reports, as BOINC's scheduler RPC does: one call
// then both reports and asks for work.
type LeaseRequest struct {
	Worker  string        `json:"worker"`
	Address string        `json:"address,omitempty"`
	Cores   int           `json:"cores,omitempty"`
	Max     int           `json:"max"`
	Wait    time.Duration `json:"wait_ns,omitempty"`
	// Engines the worker has; it is given only tasks it can run.
	Engines []string `json:"engines,omitempty"`
	// Storage says the worker is also a storage peer, serving shards at Address.
	Storage bool `json:"storage,omitempty"`
	// Reports are finished tasks, checked and applied as POST /v1/report
	// applies them, before any task is leased; LeaseResponse.Accepted
	// answers them. A call whose reports are refused (one too large, a
	// missing stdout blob, a bad body) leases nothing and applies nothing.
	// A server older than this field refuses any lease that carries it
	// (400, unknown field "reports"), also applying nothing.
	Reports []Report `json:"reports,omitempty"`
}

// Assignment is one leased task, with everything needed to run it.
type Assignment struct {
	Job        string            `json:"job"`
	Index      int               `json:"index"`
	Attempt    int               `json:"attempt"`
	ModuleHash string            `json:"module"`
	Name       string            `json:"name"`
	Args       []string          `json:"args,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Stdin      []byte            `json:"stdin,omitempty"`
	// InputHash names an erasure-coded input to read from the storage peers
	// (Stdin is then empty).
	InputHash string        `json:"input,omitempty"`
	Seed      uint64        `json:"seed"`
	Timeout   time.Duration `json:"timeout_ns"`
	Memory    uint64        `json:"memory"`
	MaxOutput uint64        `json:"max_output"`
	Engine    string        `json:"engine,omitempty"`
	// GridEngine, for a job whose Engine is "auto", is the engine the grid
	// chose for this module (from every worker's reports): a worker that
	// has it runs it without trials of its own; one that lacks it chooses
	// as for "auto". Empty while the grid has no choice.
	GridEngine string `json:"grid_engine,omitempty"`
	// K and M: the job's erasure coding for large results (0: the cluster's).
	K      int       `json:"k,omitempty"`
	M      int       `json:"m,omitempty"`
	Expiry time.Time `json:"expiry"`
}

// LeaseResponse carries the granted tasks (possibly none).
type LeaseResponse struct {
	Tasks []Assignment `json:"tasks"`
	// Accepted says, per LeaseRequest.Reports in order, whether it was
	// accepted, as ReportResponse.Accepted does (absent without reports).
	// Once the reports are committed the answer is 200 and carries it,
	// whatever happens to the lease: then Tasks is empty.
	Accepted []bool `json:"accepted,omitempty"`
}

// Report is the outcome of one attempt of one task: which attempt, and its
// result. Its JSON is flat: {"job", "index", "attempt", "exit_code", ...}.
type Report struct {
	TaskRef
	tasks.Result
}

// ReportRequest carries a worker's finished tasks.
type ReportRequest struct {
	Worker  string   `json:"worker"`
	Reports []Report `json:"reports"`
}

// ReportResponse says, per report in order, whether it was accepted.
type ReportResponse struct {
	Accepted []bool `json:"accepted"`
}

// HeartbeatRequest keeps a worker alive between leases.
type HeartbeatRequest struct {
	Worker   string `json:"worker"`
	Address  string `json:"address,omitempty"`
	Cores    int    `json:"cores,omitempty"`
	Draining bool   `json:"draining,omitempty"`
	// Running lists the attempts the worker is running now, so the server can
	// say which of them are no longer its to run (cancelled, expired).
	Running []TaskRef `json:"running,omitempty"`
	// Held lists every lease the worker holds, running or prefetched (nil
	// from a worker that does not say). A lease of this worker the ledger
	// has but the worker does not (its grant reply was lost when a leader
	// died) is handed back at once instead of waiting out its expiry.
	Held    []TaskRef `json:"held"`
	Engines []string  `json:"engines,omitempty"`
	Storage bool      `json:"storage,omitempty"`
	// StorageOnly says the peer keeps shards (at Address) but runs no tasks:
	// a server's storage peer. It never leases and has no worker role.
	StorageOnly bool `json:"storage_only,omitempty"`
	// Paused says the worker's executors are stopped by its volunteer's
	// preferences: the leader keeps its Held leases from expiring, for up
	// to HeartbeatResponse.PauseKeep of pause.
	Paused bool `json:"paused,omitempty"`
}

// HeartbeatResponse names running attempts the worker should stop: their
// lease is gone, so any result would be ignored.
type HeartbeatResponse struct {
	Stale []TaskRef `json:"stale,omitempty"`
	// TTL is how long the leader waits for a heartbeat before it marks the
	// worker down; a worker paces and bounds its heartbeats by it.
	TTL time.Duration `json:"ttl_ns,omitempty"`
	// Repairs are blobs this storage peer should repair.
	Repairs []RepairOrder `json:"repairs,omitempty"`
	// PauseKeep is how long the leader keeps a paused worker's leases (see
	// HeartbeatRequest.Paused); a worker paused longer hands them back.
	PauseKeep time.Duration `json:"pause_keep_ns,omitempty"`
	// Distrusted says the grid distrusts this worker (its results were
	// outvoted too often): it is leased nothing until an operator runs
	// peergrid peers trust on it.
	Distrusted bool `json:"distrusted,omitempty"`
}

// ReleaseRequest hands leased tasks back unrun (a draining worker).
type ReleaseRequest struct {
	Worker string    `json:"worker"`
	Tasks  []TaskRef `json:"tasks"`
}

// TaskRef names one attempt of one task.
type TaskRef struct {
	Job     string `json:"job"`
	Index   int    `json:"index"`
	Attempt int    `json:"attempt"`
}

// CompareTaskRefs orders task refs by job, index, then attempt.
func CompareTaskRefs(a, b TaskRef) int {
	return cmp.Or(cmp.Compare(a.Job, b.Job), cmp.Compare(a.Index, b.Index), cmp.Compare(a.Attempt, b.Attempt))
}

// RepairOrder asks a storage peer to rebuild a blob's lost shards onto
// other live peers and commit the new manifest.
type RepairOrder struct {
	Blob    string             `json:"blob"`
	Lost    []storage.ShardLoc `json:"lost"`
	Targets []string           `json:"targets"`
	// Caps are the leader's signed orders to the peers involved: a put
	// for each target (the shards of the segments being repaired), and a
	// get for each holder, so a repairer without a certificate of the grid
	// can still read.
	Caps []PeerCapability `json:"caps,omitempty"`
}

// FaultReport tells the leader which shards a reader found missing or
// corrupt, so it plans their repair.
type FaultReport struct {
	Lost []storage.ShardLoc `json:"lost"`
}

// StorageConfig is the cluster's erasure coding: what a blob put uses unless
// a job or the caller says otherwise.
type StorageConfig struct {
	K               int   `json:"k"`
	M               int   `json:"m"`
	InlineThreshold int64 `json:"inline_threshold"`
}

// StoragePeer is a live peer that keeps shards, and where to reach it.
type StoragePeer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// ServerInfo is what a server says about itself to servers joining.
type ServerInfo struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	HasState   bool   `json:"has_state"` // part of a Raft group already
	Leader     string `json:"leader,omitempty"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	// CA is the cluster CA's certificate (PEM) once the server has one, and
	// CAProof its HMAC keyed with the token the servers were started with:
	// servers forming a group together trust the CA by it.
	CA      string `json:"ca,omitempty"`
	CAProof string `json:"ca_proof,omitempty"`
	// CommandTypes are the ledger command types the server applies: the
	// leader proposes a newer shape only when every server lists it. A
	// server too old to say applies only the types older servers did.
	CommandTypes []int `json:"command_types,omitempty"`
}

// CertifyRequest asks for a server's certificate (operator only).
type CertifyRequest struct {
	ID  string `json:"id"`
	CSR []byte `json:"csr"` // DER
}

// CertifyResponse is a server's certificate, the cluster CA and its key
// (every server holds it, to certify the workers that join), all PEM.
type CertifyResponse struct {
	Cert  string `json:"cert"`
	CA    string `json:"ca"`
	CAKey string `json:"ca_key"`
}

// JoinRequest asks the leader to add a server to the Raft group (or to
// update its HTTP address). It is idempotent.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// CommandTypes are the ledger command types the joining server applies
	// (see ServerInfo.CommandTypes).
	CommandTypes []int `json:"command_types,omitempty"`
}

// RaftPeer is one server of the Raft group, as operator raft list-peers shows it.
type RaftPeer struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	State     string `json:"state"` // leader | follower | candidate | unreachable
	Voter     bool   `json:"voter"`
	LastIndex uint64 `json:"last_index"`
}

// Status is a server's view of itself and the Raft group.
type Status struct {
	ID        string `json:"id"`
	Leader    string `json:"leader"`
	RaftState string `json:"raft_state"`
	LastIndex uint64 `json:"last_index"`
}

// MaxModuleSize bounds a job's module: clients refuse to upload a larger one
// and workers to fetch one. Modules over the inline threshold are
// erasure-coded like inputs, so this is not bound by the ledger's MaxInline.
const MaxModuleSize = 256 << 20

// Credential roles: what a token may do (see the README's security model).
const (
	// CredOperator may do everything.
	CredOperator = "operator"
	// CredSubmitter submits jobs and sees, fetches, cancels and purges only
	// its own jobs and blobs.
	CredSubmitter = "submitter"
	// CredWorker is a join token: it may only exchange itself, once per
	// worker, for that worker's own credential (POST /v1/join).
	CredWorker = "worker"
	// CredPeer is a worker's own credential, issued at join: it speaks for
	// that one worker id and nothing else.
	CredPeer = "peer"
)

// TokenInfo describes a credential without its secret.
type TokenInfo struct {
	ID       string     `json:"id"`
	Name     string     `json:"name,omitempty"`
	Role     string     `json:"role"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	UsesLeft *int       `json:"uses_left,omitempty"` // a join token's remaining uses (nil: unlimited)
	Peer     string     `json:"peer,omitempty"`      // a peer credential's worker id
	MaxCores int        `json:"max_cores,omitempty"` // cores a worker joined with it may claim (0: no cap)
	Revoked  *time.Time `json:"revoked,omitempty"`
	// Quotas are what the credential may ask of the grid (its role's
	// defaults unless an operator set others).
	Quotas *Quotas `json:"quotas,omitempty"`
	// Usage is what the credential's jobs and blobs hold against them
	// (in listings).
	Usage *QuotaUsage `json:"usage,omitempty"`
}

// CreateTokenRequest asks for a new credential (operator only).
type CreateTokenRequest struct {
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
	// TTL bounds the credential's life (0: it does not expire).
	TTL time.Duration `json:"ttl_ns,omitempty"`
	// Uses bounds how many workers a join token may admit (0: unlimited).
	Uses int `json:"uses,omitempty"`
	// MaxCores caps the cores a worker joined with this token may claim.
	MaxCores int `json:"max_cores,omitempty"`
	// Quotas override the role's default quotas (operator and submitter
	// credentials only).
	Quotas QuotaOverrides `json:"quotas,omitzero"`
}

// CreateTokenResponse carries the new credential's secret: shown once, never
// stored (the ledger keeps its hash).
type CreateTokenResponse struct {
	TokenInfo
	Secret string `json:"secret"`
}

// WorkerJoinRequest is a worker's exchange of a join token for its own
// credential: it asks for an id (empty: the server picks one).
type WorkerJoinRequest struct {
	Name  string `json:"name,omitempty"`
	Cores int    `json:"cores,omitempty"`
	// CSR is a certificate request for the worker's key (DER): the answer
	// carries its certificate (role worker, its id), which it serves shards
	// with.
	CSR []byte `json:"csr,omitempty"`
}

// WorkerJoinResponse names the worker and carries its credential's secret,
// which the worker keeps (mode 0600) and authenticates with from then on.
type WorkerJoinResponse struct {
	Worker     string `json:"worker"`
	Credential string `json:"credential_id"`
	Secret     string `json:"secret"`
	Cert       string `json:"cert,omitempty"` // PEM, when the request carried a CSR
	CA         string `json:"ca,omitempty"`   // the cluster CA, PEM
}
