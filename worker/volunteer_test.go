package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/wasm"
	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// fakeClock is the time the policy reads; tests move it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fakeMachine is the idle, battery and load sources, as a test sets them.
type fakeMachine struct {
	mu      sync.Mutex
	idle    time.Duration
	idleErr error
	battery bool
	load    float64
}

func (m *fakeMachine) IdleFor(time.Time) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idle, m.idleErr
}
func (m *fakeMachine) OnBattery() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.battery, nil
}
func (m *fakeMachine) OtherCPU([]int) (float64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load, nil
}
func (m *fakeMachine) change(f func(m *fakeMachine)) { m.mu.Lock(); f(m); m.mu.Unlock() }

func (m *fakeMachine) sources() prefs.Sources {
	return prefs.Sources{Idle: m, Battery: m, Load: m}
}

// fakePauser is a fake runner that can be paused: a run does not end while
// paused (as a stopped executor would not), and it records the CPU limit.
type fakePauser struct {
	*fakeRunner
	mu       sync.Mutex
	paused   bool
	resumed  chan struct{} // closed and replaced on Resume
	pauses   int
	cpuShare float64
}

func newFakePauser(r *fakeRunner) *fakePauser {
	return &fakePauser{fakeRunner: r, resumed: make(chan struct{}), cpuShare: 1}
}

var _ Pauser = (*fakePauser)(nil)

func (p *fakePauser) Pause() { p.mu.Lock(); p.paused = true; p.pauses++; p.mu.Unlock() }
func (p *fakePauser) Resume() {
	p.mu.Lock()
	p.paused = false
	close(p.resumed)
	p.resumed = make(chan struct{})
	p.mu.Unlock()
}
func (p *fakePauser) SetCPULimit(s float64) { p.mu.Lock(); p.cpuShare = s; p.mu.Unlock() }
func (p *fakePauser) PIDs() []int           { return nil }
func (p *fakePauser) state() (paused bool, share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused, p.cpuShare
}

func (p *fakePauser) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	res, err := p.fakeRunner.Run(ctx, req)
	for {
		p.mu.Lock()
		paused, resumed := p.paused, p.resumed
		p.mu.Unlock()
		if !paused || ctx.Err() != nil {
			break
		}
		select {
		case <-resumed:
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, err
}

// volunteerWorker is a worker on the fake grid that obeys p, reading m
// and clock, with a fake pausable runner.
func volunteerWorker(t *testing.T, g *fakeGrid, runner *fakePauser, p prefs.Prefs, m *fakeMachine, clock *fakeClock, extra func(*Volunteer)) *Worker {
	t.Helper()
	v := &Volunteer{Prefs: p, Sources: m.sources(), Now: clock.now, Poll: time.Millisecond}
	if extra != nil {
		extra(v)
	}
	return testWorker(t, g, Config{Cores: 1, Prefetch: -1, Pool: runner, Volunteer: v, Heartbeat: 5 * time.Millisecond})
}

// status, pause and resume act as the control socket would on the
// worker's Run in progress.
func (w *Worker) vol() *volunteer {
	for {
		if r := w.active.Load(); r != nil {
			r.mu.Lock()
			v := r.vol
			r.mu.Unlock()
			if v != nil {
				return v
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *Worker) status() control.Status { return w.vol().Status() }
func (w *Worker) pause()                 { w.vol().Pause() }
func (w *Worker) resume()                { w.vol().Resume() }

func waitStatus(t *testing.T, w *Worker, what string, cond func(control.Status) bool) control.Status {
	t.Helper()
	var st control.Status
	eventually(t, what, func() bool {
		st = w.status()
		return cond(st)
	})
	return st
}

func with(kv ...string) prefs.Prefs {
	p := prefs.Default()
	for i := 0; i < len(kv); i += 2 {
		if err := p.Set(kv[i], kv[i+1]); err != nil {
			panic(err)
		}
	}
	return p
}

// TestVolunteer_EachPreferencePausesAndResumesTheWorker: for each
// preference, the machine (or the clock) changing one way stops the
// executors and the leasing, with the reason in the status; changing back
// resumes them.
func TestVolunteer_EachPreferencePausesAndResumesTheWorker(t *testing.T) {
	wednesday := time.Date(2026, 12, 2, 12, 0, 0, 0, time.Local)
	for _, c := range []struct {
		name          string
		prefs         prefs.Prefs
		stop, restart func(m *fakeMachine, c *fakeClock)
		state, reason string
	}{
		{"run_when idle", with("run_when", "idle", "idle_after", "5m"),
			func(m *fakeMachine, _ *fakeClock) { m.idle = 40 * time.Second },
			func(m *fakeMachine, _ *fakeClock) { m.idle = 6 * time.Minute },
			"waiting", "waiting: user active 40s ago"},
		{"schedule", with("schedule", "Mon-Fri 18:00-08:00"),
			func(_ *fakeMachine, c *fakeClock) { c.set(wednesday) },
			func(_ *fakeMachine, c *fakeClock) { c.set(wednesday.Add(7 * time.Hour)) },
			"paused", "paused: outside the schedule until Wed 18:00"},
		{"on_battery", with("on_battery", "pause"),
			func(m *fakeMachine, _ *fakeClock) { m.battery = true },
			func(m *fakeMachine, _ *fakeClock) { m.battery = false },
			"paused", "paused: on battery"},
		{"pause_when_busy", with("pause_when_busy", "25"),
			func(m *fakeMachine, _ *fakeClock) { m.load = 63 },
			func(m *fakeMachine, _ *fakeClock) { m.load = 5 },
			"paused", "paused: other programs use 63% of the CPU (pause_when_busy = 25%)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newFakeGrid()
			runner := newFakePauser(&fakeRunner{gate: make(chan struct{})})
			m, clock := &fakeMachine{idle: time.Hour}, &fakeClock{t: wednesday.Add(8 * time.Hour)} // Wed 20:00
			w := volunteerWorker(t, g, runner, c.prefs, m, clock, nil)
			runWorker(t, w)
			g.queue(task("j", 0))
			waitStatus(t, w, "the task running", func(st control.Status) bool { return st.Running == 1 && st.State == "running" })

			m.change(func(m *fakeMachine) { c.stop(m, clock) })
			st := waitStatus(t, w, c.state, func(st control.Status) bool { return st.State == c.state })
			if !strings.HasPrefix(st.Reason, c.reason) || st.Held != 1 {
				t.Errorf("status %q (%d held), want %q and the task held", st.Reason, st.Held, c.reason)
			}
			if paused, _ := runner.state(); !paused {
				t.Error("the executors were not paused")
			}
			leases := len(g.callsOf("Lease"))
			g.queue(task("j", 1))

			m.change(func(m *fakeMachine) { c.restart(m, clock) })
			st = waitStatus(t, w, "running again", func(st control.Status) bool { return st.State == "running" })
			if paused, _ := runner.state(); paused {
				t.Error("the executors were not resumed")
			}
			if st.Reason != "running 1 task" {
				t.Errorf("running status %q", st.Reason)
			}
			runner.gate <- struct{}{}
			eventually(t, "the task queued during the pause leased after it", func() bool { return len(g.callsOf("Lease")) > leases })
			runner.gate <- struct{}{}
		})
	}
}

// TestVolunteer_NoLeasesWhilePaused: a worker that starts paused never
// asks for work until it runs.
func TestVolunteer_NoLeasesWhilePaused(t *testing.T) {
	g := newFakeGrid()
	m, clock := &fakeMachine{battery: true}, &fakeClock{t: time.Now()}
	w := volunteerWorker(t, g, newFakePauser(&fakeRunner{}), prefs.Default(), m, clock, nil)
	runWorker(t, w)
	g.queue(task("j", 0))
	eventually(t, "paused heartbeats", func() bool {
		hb := g.callsOf("Heartbeat")
		return len(hb) >= 3 && hb[len(hb)-1].heartbeat.Paused
	})
	if n := len(g.callsOf("Lease")); n != 0 {
		t.Fatalf("%d lease calls while paused", n)
	}
	m.change(func(m *fakeMachine) { m.battery = false })
	eventually(t, "the task reported after the battery", func() bool { return len(g.callsOf("Report")) == 1 })
}

// TestVolunteer_PauseKeepsTheLeasesThenHandsThemBack: while paused, the
// heartbeats say so and list the leases (the leader renews them); a pause
// longer than pause_keep stops the running task and hands it and the queued
// ones back without a report, and resuming leases again.
func TestVolunteer_PauseKeepsTheLeasesThenHandsThemBack(t *testing.T) {
	g := newFakeGrid()
	runner := newFakePauser(&fakeRunner{gate: make(chan struct{})})
	m, clock := &fakeMachine{}, &fakeClock{t: time.Now()}
	p := prefs.Default()
	p.PauseKeep = 10 * time.Minute
	w := testWorker(t, g, Config{Cores: 1, Prefetch: 1, Pool: runner, Heartbeat: 5 * time.Millisecond,
		Volunteer: &Volunteer{Prefs: p, Sources: m.sources(), Now: clock.now, Poll: time.Millisecond}})
	runWorker(t, w)
	g.queue(task("j", 0), task("j", 1))
	waitStatus(t, w, "one running, one queued", func(st control.Status) bool { return st.Running == 1 && st.Held == 2 })

	w.pause()
	clock.add(9 * time.Minute) // within pause_keep
	eventually(t, "paused heartbeats holding both leases", func() bool {
		hb := g.callsOf("Heartbeat")
		if len(hb) == 0 {
			return false
		}
		last := hb[len(hb)-1].heartbeat
		return last.Paused && len(last.Held) == 2
	})
	if len(g.callsOf("Release")) != 0 {
		t.Fatal("handed back within pause_keep")
	}

	clock.add(2 * time.Minute) // past it
	eventually(t, "both tasks handed back", func() bool {
		var refs []api.TaskRef
		for _, c := range g.callsOf("Release") {
			refs = append(refs, c.release.Tasks...)
		}
		return sameRefs(refs, []api.TaskRef{refOf(task("j", 0)), refOf(task("j", 1))})
	})
	st := waitStatus(t, w, "nothing held", func(st control.Status) bool { return st.Held == 0 })
	if !st.HandedBack || st.State != "paused" {
		t.Errorf("status after the hand back: %+v", st)
	}
	if len(g.callsOf("Report")) != 0 {
		t.Fatal("a handed-back task was reported")
	}
	if hb := g.callsOf("Heartbeat"); hb[len(hb)-1].heartbeat.Paused {
		eventually(t, "heartbeats no longer asking to keep leases", func() bool {
			hb := g.callsOf("Heartbeat")
			return !hb[len(hb)-1].heartbeat.Paused
		})
	}
	w.resume()
	g.queue(task("j", 2))
	eventually(t, "a task leased after resume", func() bool {
		for _, c := range g.callsOf("Lease") {
			for _, a := range c.granted {
				if a.Index == 2 {
					return true
				}
			}
		}
		return false
	})
	close(runner.gate)
}

// TestVolunteer_PauseKeepIsCappedByTheLeader: the leader's PauseKeep,
// shorter than the volunteer's pause_keep, is what the worker keeps.
func TestVolunteer_PauseKeepIsCappedByTheLeader(t *testing.T) {
	g := newFakeGrid()
	g.onHeartbeat = func(int, *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		return &api.HeartbeatResponse{PauseKeep: time.Minute}, nil
	}
	runner := newFakePauser(&fakeRunner{gate: make(chan struct{})})
	m, clock := &fakeMachine{}, &fakeClock{t: time.Now()}
	w := volunteerWorker(t, g, runner, prefs.Default(), m, clock, nil) // pause_keep 10m
	runWorker(t, w)
	g.queue(task("j", 0))
	waitStatus(t, w, "the task running", func(st control.Status) bool { return st.Running == 1 })
	w.pause()
	clock.add(2 * time.Minute)
	eventually(t, "the task handed back after the leader's minute", func() bool { return len(g.callsOf("Release")) == 1 })
	close(runner.gate)
}

// TestVolunteer_MaxCPUThrottlesTheExecutors: max_cpu = 50 sets the pool's
// CPU limit to half the machine, and the status says so.
func TestVolunteer_MaxCPUThrottlesTheExecutors(t *testing.T) {
	g := newFakeGrid()
	runner := newFakePauser(&fakeRunner{})
	w := volunteerWorker(t, g, runner, with("max_cpu", "50"), &fakeMachine{}, &fakeClock{t: time.Now()}, nil)
	runWorker(t, w)
	st := waitStatus(t, w, "throttled", func(st control.Status) bool { return st.CPULimit == 0.5 })
	if _, share := runner.state(); share != 0.5 || st.Reason != "running, throttled to 50% of the CPU" {
		t.Fatalf("pool share %v, status %q", share, st.Reason)
	}
}

// TestVolunteer_MaxMemoryRunsTasksWithinItAndRefusesOnesOverIt: tasks
// whose memory caps do not fit beside the running ones wait; one over
// max_memory alone fails as the worker's, so its retry goes elsewhere.
func TestVolunteer_MaxMemoryRunsTasksWithinItAndRefusesOnesOverIt(t *testing.T) {
	g := newFakeGrid()
	runner := newFakePauser(&fakeRunner{gate: make(chan struct{})})
	w := testWorker(t, g, Config{Cores: 2, Prefetch: -1, Pool: runner,
		Volunteer: &Volunteer{Prefs: with("max_memory", "1MiB"), Sources: (&fakeMachine{}).sources(), Poll: time.Millisecond}})
	runWorker(t, w)
	big, a, b := task("j", 0), task("j", 1), task("j", 2)
	big.Memory, a.Memory, b.Memory = 2<<20, 600<<10, 600<<10
	g.queue(big, a, b)
	eventually(t, "the big task refused", func() bool { return len(g.callsOf("Report")) == 1 })
	rep := g.callsOf("Report")[0].report.Reports[0]
	if rep.Index != 0 || rep.ErrorKind != "worker" || !strings.Contains(rep.Error, "max_memory") {
		t.Fatalf("refusal %+v", rep)
	}
	eventually(t, "one small task running", func() bool { return len(runner.started()) == 1 })
	if st := w.status(); st.Running != 1 {
		t.Fatalf("%d running with room for one", st.Running)
	}
	runner.gate <- struct{}{}
	eventually(t, "the second small task running after the first", func() bool { return len(runner.started()) == 2 })
	runner.gate <- struct{}{}
}

// TestVolunteer_ControlSocketAndPrefsFile: `worker prefs --set` through the
// socket changes the worker at once and writes prefs.toml; an edit of
// prefs.toml is read again; pause and resume work through the socket.
func TestVolunteer_ControlSocketAndPrefsFile(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock, file := filepath.Join(dir, control.SocketName), filepath.Join(dir, prefs.FileName)
	g := newFakeGrid()
	runner := newFakePauser(&fakeRunner{})
	w := volunteerWorker(t, g, runner, prefs.Default(), &fakeMachine{}, &fakeClock{t: time.Now()}, func(v *Volunteer) {
		v.ControlSocket, v.PrefsFile = sock, file
	})
	runWorker(t, w)
	ctx := context.Background()
	var st *control.Status
	eventually(t, "the control socket", func() bool {
		st, err = control.Call(ctx, sock, control.Request{Op: "status"})
		return err == nil
	})
	if st.Worker != "w1" || st.State != "running" || st.Prefs["max_cpu"] != "100" {
		t.Fatalf("status %+v", st)
	}
	if st, err = control.Call(ctx, sock, control.Request{Op: "set", Key: "max_cpu", Value: "30"}); err != nil || st.CPULimit != 0.3 {
		t.Fatalf("set max_cpu: %+v %v", st, err)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), "max_cpu = 30") {
		t.Fatalf("prefs.toml after set:\n%s", b)
	}
	if _, err = control.Call(ctx, sock, control.Request{Op: "set", Key: "max_cpu", Value: "300"}); err == nil || !strings.Contains(err.Error(), `max_cpu = "300"`) {
		t.Fatalf("a bad value: %v", err)
	}
	if st, err = control.Call(ctx, sock, control.Request{Op: "pause"}); err != nil || st.State != "paused" || !strings.Contains(st.Reason, "worker pause") {
		t.Fatalf("pause: %+v %v", st, err)
	}
	if st, err = control.Call(ctx, sock, control.Request{Op: "resume"}); err != nil || st.State != "running" {
		t.Fatalf("resume: %+v %v", st, err)
	}
	// An edit of the file (a later mtime) is read again.
	os.WriteFile(file, []byte("on_battery = \"run\"\nmax_cpu = 70\n"), 0o600)
	later := time.Now().Add(time.Minute)
	os.Chtimes(file, later, later)
	eventually(t, "prefs.toml reloaded", func() bool {
		st, err := control.Call(ctx, sock, control.Request{Op: "status"})
		return err == nil && st.Prefs["max_cpu"] == "70" && st.Prefs["on_battery"] == "run"
	})
}

// TestVolunteer_IdleUnreadableCountsAsBusy: with run_when = idle and no
// way to read idle time, the worker waits and says why.
func TestVolunteer_IdleUnreadableCountsAsBusy(t *testing.T) {
	g := newFakeGrid()
	m := &fakeMachine{idleErr: errors.New("idle time cannot be read here")}
	w := volunteerWorker(t, g, newFakePauser(&fakeRunner{}), with("run_when", "idle"), m, &fakeClock{t: time.Now()}, nil)
	runWorker(t, w)
	st := waitStatus(t, w, "waiting", func(st control.Status) bool { return st.State == "waiting" })
	if !strings.Contains(st.Reason, "cannot tell whether the machine is idle") {
		t.Fatalf("reason %q", st.Reason)
	}
}
