package main

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/jobcheck"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/tasks"
)

// TestMultiProcess_WorkerChurn is issue 5's acceptance 1: three server and
// four worker processes on loopback run a 2,000-task job; two workers are
// killed with SIGKILL mid-job and a new one joins. The job completes, every
// task has exactly one accepted result, and every result is what the test
// computes.
func TestMultiProcess_WorkerChurn(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL and SIGSTOP")
	}
	c := proctest.StartServers(t, 3, proctest.Options{WorkerTTL: time.Second})
	var workers []*proctest.Proc
	for _, name := range []string{"w1", "w2", "w3", "w4"} {
		workers = append(workers, c.AddWorker(name, 1))
	}
	client := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Every worker registered before the kills: one killed before it ever
	// said hello (a slow start on a loaded machine) is never marked down.
	proctest.Eventually(t, 60*time.Second, "the four workers registered", func() bool {
		peers, err := client.Peers(ctx)
		if err != nil {
			return false
		}
		alive := 0
		for _, p := range peers {
			if slices.Contains(p.Roles, api.RoleWorker) && p.State == api.PeerAlive {
				alive++
			}
		}
		return alive == 4
	})
	const n = 2000
	id := submitEchoJob(ctx, t, client, n)
	jobcheck.WaitJob(t, client, id, 60*time.Second, func(s *api.JobSummary) bool { return s.Done > 0 })
	// Freeze everyone so the kills surely land mid-job (tiny tasks are fast).
	for _, w := range workers {
		if err := w.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	before := jobcheck.WaitJob(t, client, id, 10*time.Second, func(*api.JobSummary) bool { return true })
	if before.State.Finished() {
		t.Fatalf("the job finished before the kills: the test proves nothing (%+v)", before)
	}
	workers[0].Kill9()
	workers[1].Kill9()
	for _, w := range workers[2:] {
		if err := w.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	c.AddWorker("w5", 1)
	t.Logf("killed w1 and w2 with %d of %d tasks done, %d leased; w5 joined", before.Done, n, before.Leased)

	sum := jobcheck.WaitJob(t, client, id, 90*time.Second, func(s *api.JobSummary) bool { return s.State.Finished() })
	if sum.State != tasks.JobComplete || sum.Done != n {
		t.Fatalf("job ended %s: %+v", sum.State, sum)
	}
	jobcheck.EveryTaskOnce(t, client, id, n, echoOf)
	// The job may finish before the TTL runs out for the killed workers (when
	// they held no lease): their being marked down is checked on its own.
	proctest.Eventually(t, 30*time.Second, "the killed workers marked down", func() bool {
		peers, err := client.Peers(ctx)
		if err != nil {
			return false
		}
		down := 0
		for _, p := range peers {
			if (p.ID == "w1" || p.ID == "w2") && p.State == api.PeerDown {
				down++
			}
		}
		return down == 2
	})
}
