package devgrid

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/worker"
	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// battery is a battery source a test plugs and unplugs.
type battery struct {
	mu  sync.Mutex
	off bool // on battery
}

func (b *battery) OnBattery() (bool, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.off, nil }
func (b *battery) set(on bool)              { b.mu.Lock(); b.off = on; b.mu.Unlock() }

// volunteerGrid is a server with a 1s worker TTL and 300ms lease slack,
// one job of one task that computes for a while and prints "spun" (timeout
// given), and a worker with real executors that pauses on battery.
func volunteerGrid(t *testing.T, timeout, pauseKeep time.Duration) (c *client.Client, job string, bat *battery, sock string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Start(context.Background(), Config{DataDir: t.TempDir(), NoWorker: true, WorkerTTL: time.Second, LeaseSlack: 300 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c = g.Client()
	ctx := context.Background()
	mod := wasmtest.SpinThenHello(1_500_000_000, "spun\n") // about a second of compute
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	job, err = c.Submit(ctx, &tasks.JobSpec{Name: "spin", ModuleHash: storage.Hash(mod), Tasks: 1, Timeout: timeout, Memory: 1 << 20, MaxOutput: 64})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgv") // short: a unix socket path is at most ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bat, sock = &battery{}, filepath.Join(dir, control.SocketName)
	p := prefs.Default()
	p.PauseKeep = pauseKeep
	w, err := worker.New(ctx, worker.Config{ID: "volunteer", Client: c, DataDir: filepath.Join(dir, "worker"), Cores: 1, Prefetch: -1,
		Heartbeat: 100 * time.Millisecond, Logger: quiet,
		Volunteer: &worker.Volunteer{Prefs: p, Sources: prefs.Sources{Battery: bat}, ControlSocket: sock, Poll: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done; w.Close() })
	return c, job, bat, sock
}

func workerStatus(t *testing.T, sock string) *control.Status {
	st, err := control.Call(context.Background(), sock, control.Request{Op: "status"})
	if err != nil {
		return &control.Status{}
	}
	return st
}

// TestVolunteer_TaskPausedLongerThanItsTimeoutFinishesWithItsResult: a task
// stopped mid-run (the worker went on battery) for longer than its timeout
// and than its first lease (timeout + slack) finishes after the machine is
// plugged in again, with the right result, on its first attempt: the pause
// counted against neither the task's timeout nor its lease.
func TestVolunteer_TaskPausedLongerThanItsTimeoutFinishesWithItsResult(t *testing.T) {
	// The task computes for about a second (more on a loaded machine: at
	// load 14 a 6s timeout was not enough room): a timeout of 10s leaves it
	// room, and the pause outlasts the timeout and the lease (timeout +
	// 300ms of slack).
	const timeout, pause = 10 * time.Second, 11 * time.Second
	c, job, bat, sock := volunteerGrid(t, timeout, time.Hour)
	testcluster.Eventually(t, 30*time.Second, "the task running", func() bool { return workerStatus(t, sock).Running == 1 })
	bat.set(true)
	paused := time.Now()
	testcluster.Eventually(t, 10*time.Second, "the worker paused", func() bool { return workerStatus(t, sock).State == "paused" })
	for time.Since(paused) < pause { // the pause under test; the job must not move meanwhile
		st, err := c.Job(context.Background(), job)
		if err != nil || st.TaskStats[0].State != tasks.TaskLeased || st.TaskStats[0].Attempts != 1 {
			t.Fatalf("%v into the pause: %+v %v", time.Since(paused).Round(time.Millisecond), st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bat.set(false)
	sum, err := c.WaitJob(context.Background(), job, 20*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete {
		st, _ := c.Job(context.Background(), job)
		t.Fatalf("job after resume: %+v %v; task %+v", sum, err, st.TaskStats)
	}
	res, err := c.Results(context.Background(), job)
	if err != nil || string(res[0].Stdout) != "spun\n" || res[0].Duration >= pause {
		t.Fatalf("result %+v %v", res, err)
	}
	st, _ := c.Job(context.Background(), job)
	if st.TaskStats[0].Attempts != 1 {
		t.Fatalf("the task took %d attempts", st.TaskStats[0].Attempts)
	}
}

// TestVolunteer_PauseLongerThanPauseKeepHandsTheTaskBack: a pause past
// pause_keep hands the task back uncharged (another worker could take it
// at once); when this one runs again, it takes it and finishes it.
func TestVolunteer_PauseLongerThanPauseKeepHandsTheTaskBack(t *testing.T) {
	c, job, bat, sock := volunteerGrid(t, 30*time.Second, time.Second)
	testcluster.Eventually(t, 30*time.Second, "the task running", func() bool { return workerStatus(t, sock).Running == 1 })
	bat.set(true)
	testcluster.Eventually(t, 10*time.Second, "the task handed back", func() bool {
		st, err := c.Job(context.Background(), job)
		return err == nil && st.TaskStats[0].State == tasks.TaskQueued
	})
	if st, _ := c.Job(context.Background(), job); st.TaskStats[0].Attempts != 0 {
		t.Fatalf("a handed-back task was charged an attempt: %+v", st.TaskStats[0])
	}
	if st := workerStatus(t, sock); !st.HandedBack || st.Held != 0 {
		t.Fatalf("worker status after the hand back: %+v", st)
	}
	bat.set(false)
	sum, err := c.WaitJob(context.Background(), job, 20*time.Millisecond, nil)
	if err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job: %+v %v", sum, err)
	}
	res, err := c.Results(context.Background(), job)
	if err != nil || string(res[0].Stdout) != "spun\n" {
		t.Fatalf("result %+v %v", res, err)
	}
}
