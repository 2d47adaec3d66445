// Package liar is a test worker that lies: it joins a grid as a real worker
// does, leases tasks through the API client, and reports a stdout it
// chooses instead of running anything. Acceptance tests mix liars with real
// workers (package worker) to check that replicas, the quorum and the
// reputation rules hold against strangers who return wrong bytes.
//
// It must not be imported outside tests: it is a hostile peer on purpose.
// It uses only what any volunteer has (its own credential and the public
// API), so whatever it manages to get accepted, a real cheater could too.
package liar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/worker"
)

// Answer is the stdout a liar reports for a task it leased. The liar
// reports exit code 0, so the server counts the report as a vote.
type Answer func(a *api.Assignment) []byte

// Constant answers every task with the same bytes: what colluders agree on.
func Constant(stdout []byte) Answer {
	return func(*api.Assignment) []byte { return stdout }
}

// Config configures a liar.
type Config struct {
	// ID is the worker id the liar's credential speaks for.
	ID string
	// Client speaks as the worker (see Enroll).
	Client *client.Client
	// Answer chooses each task's stdout.
	Answer Answer
	// Cores is how many tasks it leases at once (default 1).
	Cores int
	// Heartbeat is how often it tells the leader it is alive (default 100 ms).
	Heartbeat time.Duration
	// LeaseWait is the long poll of each lease request (default 200 ms).
	LeaseWait time.Duration
	// Engines the liar claims to have (default wazero).
	Engines []string
	// Delay is how long it pretends to run each lease before reporting,
	// so a test can stop it or its server with work in flight.
	Delay time.Duration
}

// Worker is a running liar.
type Worker struct {
	cfg Config

	stop     func() // set by Start
	stopOnce sync.Once

	mu       sync.Mutex
	reported int
	accepted int
	leased   int
}

// New checks cfg and returns a liar ready to Run.
func New(cfg Config) (*Worker, error) {
	if cfg.ID == "" || cfg.Client == nil || cfg.Answer == nil {
		return nil, errors.New("liar: ID, Client and Answer are required")
	}
	if cfg.Cores <= 0 {
		cfg.Cores = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 100 * time.Millisecond
	}
	if cfg.LeaseWait <= 0 {
		cfg.LeaseWait = 200 * time.Millisecond
	}
	if len(cfg.Engines) == 0 {
		cfg.Engines = []string{"wazero"}
	}
	return &Worker{cfg: cfg}, nil
}

// Enroll joins the grid as worker name the way a real worker does
// (worker.Enroll): join is a client carrying a join token (or an operator's),
// exchanged once for the worker's own credential and certificate, kept in
// dataDir. with makes a client for the grid with a given token (a dev
// grid's ClientWith). Two liars enrolled with one join token share that
// credential, as one volunteer's machines do.
func Enroll(ctx context.Context, join *client.Client, with func(token string) *client.Client, dataDir, name string) (*client.Client, error) {
	cred, err := worker.Enroll(ctx, join, dataDir, name, 1)
	if err != nil {
		return nil, fmt.Errorf("liar %s: %w", name, err)
	}
	c := with(cred.Secret)
	cert, err := worker.ShardTLS(dataDir)
	if err != nil {
		return nil, fmt.Errorf("liar %s: %w", name, err)
	}
	if cert != nil {
		c.Identify(cert)
	}
	return c, nil
}

// Stats counts what the liar did: tasks leased, reports sent, reports the
// server accepted (accepted is not agreed: the quorum decides that).
type Stats struct{ Leased, Reported, Accepted int }

// Stats returns the liar's counts so far.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Leased: w.leased, Reported: w.reported, Accepted: w.accepted}
}

// Run heartbeats, leases and reports until ctx ends. Errors from the grid
// (a distrusted liar is refused work, a leader changes) do not stop it: it
// keeps asking, as a cheater would.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.heartbeat(ctx) }()
	defer wg.Wait()
	for ctx.Err() == nil {
		if err := w.leaseAndReport(ctx); err != nil && ctx.Err() == nil {
			pause(ctx, w.cfg.LeaseWait) // the grid said no: ask again later, not in a tight loop
		}
	}
	return nil
}

func (w *Worker) heartbeat(ctx context.Context) {
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		_, _ = w.cfg.Client.Heartbeat(ctx, &api.HeartbeatRequest{Worker: w.cfg.ID, Cores: w.cfg.Cores, Engines: w.cfg.Engines})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunHeartbeats only heartbeats until ctx ends: the liar stays alive and
// leases only when a test calls Step, so the test chooses the order in
// which workers ask for work.
func (w *Worker) RunHeartbeats(ctx context.Context) error {
	w.heartbeat(ctx)
	return nil
}

// Step leases up to Cores tasks without waiting and reports them (after
// Delay); it returns how many it leased.
func (w *Worker) Step(ctx context.Context) (int, error) {
	got, err := w.lease(ctx, 0)
	if err != nil || len(got) == 0 {
		return 0, err
	}
	return len(got), w.report(ctx, got)
}

func (w *Worker) lease(ctx context.Context, wait time.Duration) ([]api.Assignment, error) {
	return w.cfg.Client.Lease(ctx, &api.LeaseRequest{Worker: w.cfg.ID, Cores: w.cfg.Cores, Max: w.cfg.Cores,
		Wait: wait, Engines: w.cfg.Engines})
}

// leaseAndReport leases up to Cores tasks and reports the chosen stdout for
// each, after Delay: a liar runs nothing.
func (w *Worker) leaseAndReport(ctx context.Context) error {
	got, err := w.lease(ctx, w.cfg.LeaseWait)
	if err != nil || len(got) == 0 {
		return err
	}
	return w.report(ctx, got)
}

func (w *Worker) report(ctx context.Context, got []api.Assignment) error {
	if w.cfg.Delay > 0 {
		pause(ctx, w.cfg.Delay)
	}
	req := &api.ReportRequest{Worker: w.cfg.ID}
	for i := range got {
		a := &got[i]
		req.Reports = append(req.Reports, api.Report{
			TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt},
			Result:  tasks.Result{Stdout: w.cfg.Answer(a), Duration: time.Millisecond, Engine: w.cfg.Engines[0]},
		})
	}
	accepted, err := w.cfg.Client.Report(ctx, req)
	w.count(len(got), accepted)
	return err
}

func (w *Worker) count(leased int, accepted []bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.leased += leased
	w.reported += len(accepted)
	for _, ok := range accepted {
		if ok {
			w.accepted++
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
