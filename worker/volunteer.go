package worker

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// Volunteer makes a worker obey the preferences of the person whose machine
// it runs on (see worker/prefs): it reads the machine's sources every Poll,
// and while prefs.Decide says stop, it takes no leases, starts no task and
// keeps its executors stopped (Pauser); its heartbeats say it is paused, so
// the leader keeps its leases (up to the leader's PauseKeep), and once the
// pause has lasted pause_keep it hands the tasks back for another worker.
// Running again continues the executors, within max_cpu.
type Volunteer struct {
	Prefs prefs.Prefs
	// PrefsFile, if set, is read at start and again whenever it changes
	// (over Prefs), and written when a preference is set through the
	// control socket.
	PrefsFile string
	Sources   prefs.Sources
	// ControlSocket, if set, is where `peergrid worker status|pause|
	// resume|prefs` reach this worker (see worker/control).
	ControlSocket string
	// Now is the clock the policy reads (default time.Now); Poll how often
	// it looks (default 1s).
	Now  func() time.Time
	Poll time.Duration
}

// Pauser stops and continues the executors and caps their CPU: the
// executor pool (wasm.Pool), or a fake in tests.
type Pauser interface {
	Pause()
	Resume()
	SetCPULimit(share float64)
	PIDs() []int
}

// volunteer is a Run's obedience to its Volunteer config.
type volunteer struct {
	cfg    Volunteer
	r      *run
	pauser Pauser // nil: the runner cannot stop tasks (they go on)

	stepMu sync.Mutex // one step at a time

	mu         sync.Mutex
	prefs      prefs.Prefs
	prefsMod   time.Time
	userPaused bool
	decision   prefs.Decision
	since      time.Time // the decision's state began
	stoppedAt  time.Time // zero while running
	handedBack bool
	serverKeep time.Duration // the leader's PauseKeep, 0 until heard
	today      control.Totals
	stored     storedCache
}

func newVolunteer(r *run, cfg Volunteer) *volunteer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	v := &volunteer{cfg: cfg, r: r, prefs: cfg.Prefs, decision: prefs.Decision{State: prefs.Running, CPUShare: 1, Reason: "running"}}
	v.since = cfg.Now()
	if p, ok := r.w.pool.(Pauser); ok {
		v.pauser = p
	}
	v.today = loadTotals(r.w.totalsPath(), v.since)
	for k, d := range cfg.Sources.Describe {
		r.w.log.Info("volunteer source", "source", k, "reads", d)
	}
	return v
}

// loop steps every Poll until ctx ends.
func (v *volunteer) loop(ctx context.Context) {
	t := time.NewTicker(v.cfg.Poll)
	defer t.Stop()
	v.step()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.step()
		}
	}
}

// step reads the sources, decides and acts.
func (v *volunteer) step() {
	v.stepMu.Lock()
	defer v.stepMu.Unlock()
	v.reloadPrefs()
	now := v.cfg.Now()
	v.mu.Lock()
	p, userPaused := v.prefs, v.userPaused
	v.mu.Unlock()
	obs := v.cfg.Sources.Observe(now, userPaused, v.gridPIDs())
	v.apply(p, prefs.Decide(p, obs), now)
}

func (v *volunteer) gridPIDs() []int {
	pids := []int{os.Getpid()}
	if v.pauser != nil {
		pids = append(pids, v.pauser.PIDs()...)
	}
	return pids
}

// apply acts on a decision: stop or continue the executors, close or open
// the gate, set the CPU limit and the memory and disk budgets, and hand
// the tasks back once a pause outlasts pause_keep.
func (v *volunteer) apply(p prefs.Prefs, d prefs.Decision, now time.Time) {
	v.r.mem.setLimit(p.MaxMemory)
	v.r.w.disk.check(v.r.w, p.MaxDisk, now)
	if v.transition(p, d, now) {
		v.r.gate.set(gateHandBack)
		v.r.handBackRunning()
	}
	if !d.Stopped() && v.pauser != nil {
		v.pauser.SetCPULimit(d.CPUShare)
	}
}

// transition records the decision and stops or starts the executors and
// the gate on a change; it reports whether the pause has just outlasted
// pause_keep. A change of state or CPU share is logged (not every new
// count of seconds in a reason).
func (v *volunteer) transition(p prefs.Prefs, d prefs.Decision, now time.Time) (handBack bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	was := v.decision
	v.decision = d
	if d.State != was.State || d.CPUShare != was.CPUShare {
		v.since = now
		v.r.w.log.Info("volunteer: "+d.Reason, "state", d.State)
	}
	switch {
	case d.Stopped() && !was.Stopped():
		v.stoppedAt = now
		v.r.gate.set(gateClosed)
		if v.pauser != nil {
			v.pauser.Pause()
		}
	case !d.Stopped() && was.Stopped():
		v.stoppedAt, v.handedBack = time.Time{}, false
		if v.pauser != nil {
			v.pauser.Resume()
		}
		v.r.gate.set(gateOpen)
	}
	if d.Stopped() && !v.handedBack && now.Sub(v.stoppedAt) >= v.pauseKeepLocked(p) {
		v.handedBack = true
		v.r.w.log.Info("volunteer: paused longer than pause_keep: handing the tasks back", "pause_keep", v.pauseKeepLocked(p))
		return true
	}
	return false
}

// pauseKeepLocked is pause_keep, no longer than the leader keeps leases.
func (v *volunteer) pauseKeepLocked(p prefs.Prefs) time.Duration {
	if v.serverKeep > 0 {
		return min(p.PauseKeep, v.serverKeep)
	}
	return p.PauseKeep
}

// paused says whether heartbeats should ask the leader to keep the leases.
func (v *volunteer) paused() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.decision.Stopped() && !v.handedBack
}

func (v *volunteer) stopped() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.decision.Stopped()
}

// heard records what a heartbeat answer says of pauses.
func (v *volunteer) heard(resp *api.HeartbeatResponse) {
	v.mu.Lock()
	v.serverKeep = resp.PauseKeep
	v.mu.Unlock()
}

func (v *volunteer) reloadPrefs() {
	if v.cfg.PrefsFile == "" {
		return
	}
	mod := modTime(v.cfg.PrefsFile)
	v.mu.Lock()
	same := mod.Equal(v.prefsMod)
	v.mu.Unlock()
	if same {
		return
	}
	p := v.cfg.Prefs // flags, then the file over them
	if err := prefs.LoadFile(v.cfg.PrefsFile, &p); err != nil {
		v.r.w.log.Warn("preferences file not reloaded", "err", err)
		v.mu.Lock()
		v.prefsMod = mod
		v.mu.Unlock()
		return
	}
	v.r.w.log.Info("preferences reloaded", "file", v.cfg.PrefsFile)
	v.mu.Lock()
	v.prefs, v.prefsMod = p, mod
	v.mu.Unlock()
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// The control socket's Handler.

func (v *volunteer) Pause() {
	v.mu.Lock()
	v.userPaused = true
	v.mu.Unlock()
	v.step()
}

func (v *volunteer) Resume() {
	v.mu.Lock()
	v.userPaused = false
	v.mu.Unlock()
	v.step()
}

// Set changes one preference now, and in the preferences file if there
// is one, so it outlives a restart.
func (v *volunteer) Set(key, value string) error {
	v.stepMu.Lock()
	v.mu.Lock()
	p := v.prefs
	err := p.Set(key, value)
	if err == nil {
		v.prefs = p
		v.cfg.Prefs = p // a later reload of the file starts from here
	}
	v.mu.Unlock()
	if err == nil && v.cfg.PrefsFile != "" {
		if werr := prefs.WriteFile(v.cfg.PrefsFile, &p); werr != nil {
			v.r.w.log.Warn("preference set, but not saved", "err", werr)
		}
		v.mu.Lock()
		v.prefsMod = modTime(v.cfg.PrefsFile)
		v.mu.Unlock()
	}
	v.stepMu.Unlock()
	if err != nil {
		return err
	}
	v.step()
	return nil
}

func (v *volunteer) Status() control.Status {
	running, held := v.r.counts()
	v.mu.Lock()
	defer v.mu.Unlock()
	st := control.Status{
		Worker: v.r.w.cfg.ID, State: string(v.decision.State), Reason: v.decision.Reason, Since: v.since,
		Running: running, Held: held, CPULimit: v.decision.CPUShare, HandedBack: v.handedBack,
		Prefs: v.prefs.Map(), Sources: v.cfg.Sources.Describe, Today: v.todayLocked(v.cfg.Now()),
	}
	if st.Running > 0 && v.decision.State == prefs.Running {
		st.Reason = "running " + plural(st.Running, "task") + strings.TrimPrefix(st.Reason, "running")
	}
	select {
	case <-v.r.draining:
		st.State, st.Reason = "draining", "draining: stopping"
	default:
	}
	st.Today.StoredBytes = v.stored.get(v.r.w, v.cfg.Now())
	return st
}

// counted adds finished tasks to today's totals.
func (v *volunteer) counted(reports []api.Report) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	t := v.todayLocked(now)
	for _, rep := range reports {
		if rep.ErrorKind == "" {
			t.TasksDone++
			t.CPUSeconds += rep.Duration.Seconds()
		}
	}
	v.today = t
	saveTotals(v.r.w.totalsPath(), t)
}

// todayLocked is today's totals, started afresh on a new day.
func (v *volunteer) todayLocked(now time.Time) control.Totals {
	if day := now.Format(time.DateOnly); v.today.Date != day {
		v.today = control.Totals{Date: day}
	}
	return v.today
}
