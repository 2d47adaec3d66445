package prefs

import (
	"fmt"
	"time"
)

// State is what the worker does: run tasks, wait for the machine to be
// idle, or stay paused.
type State string

const (
	Running State = "running"
	Waiting State = "waiting" // run_when = idle and the user is active
	Paused  State = "paused"
)

// Observation is one reading of the machine, the input of Decide besides
// the preferences. Readings a source could not take have their Err set.
type Observation struct {
	Now        time.Time // local time
	UserPaused bool      // `peergrid worker pause`
	Idle       Reading[time.Duration]
	OnBattery  Reading[bool]
	// OtherCPU is the percent of the machine's CPU time used by programs
	// other than the worker and its executors.
	OtherCPU Reading[float64]
}

// Reading is one value read from a source, or why it could not be read.
type Reading[T any] struct {
	Value T
	Err   error
}

// Decision is what Decide says: the state, why (for `worker status`), and
// while running, the CPU share the executors may use (1: all).
type Decision struct {
	State    State
	Reason   string
	CPUShare float64
}

// Stopped reports whether the executors must be stopped.
func (d Decision) Stopped() bool { return d.State != Running }

// Decide is the policy, a pure function of the preferences and one
// observation. The first reason to stop wins, in this order: an explicit
// pause, the schedule, the battery, the user at the keyboard, other
// programs' load. An idle time that cannot be read counts as a busy
// machine; a battery that cannot be read as mains power; a load that
// cannot be read as none.
func Decide(p Prefs, o Observation) Decision {
	if o.UserPaused {
		return Decision{State: Paused, Reason: "paused by `peergrid worker pause` (resume with `peergrid worker resume`)"}
	}
	if !InSchedule(p.Schedule, o.Now) {
		reason := "paused: outside the schedule"
		if next, ok := NextOpen(p.Schedule, o.Now); ok {
			reason += " until " + next.Format("Mon 15:04")
		}
		return Decision{State: Paused, Reason: reason}
	}
	if p.OnBattery == BatteryPause && o.OnBattery.Err == nil && o.OnBattery.Value {
		return Decision{State: Paused, Reason: "paused: on battery"}
	}
	if p.RunWhen == RunIdle {
		if o.Idle.Err != nil {
			return Decision{State: Waiting, Reason: fmt.Sprintf("waiting: cannot tell whether the machine is idle (%v), so it counts as in use", o.Idle.Err)}
		}
		if o.Idle.Value < p.IdleAfter {
			return Decision{State: Waiting, Reason: fmt.Sprintf("waiting: user active %s ago (runs after %s idle)", roundAgo(o.Idle.Value), p.IdleAfter)}
		}
	}
	if p.PauseWhenBusy > 0 && o.OtherCPU.Err == nil && o.OtherCPU.Value > float64(p.PauseWhenBusy) {
		return Decision{State: Paused, Reason: fmt.Sprintf("paused: other programs use %.0f%% of the CPU (pause_when_busy = %d%%)", o.OtherCPU.Value, p.PauseWhenBusy)}
	}
	if p.MaxCPU > 0 && p.MaxCPU < 100 {
		return Decision{State: Running, CPUShare: float64(p.MaxCPU) / 100, Reason: fmt.Sprintf("running, throttled to %d%% of the CPU", p.MaxCPU)}
	}
	return Decision{State: Running, CPUShare: 1, Reason: "running"}
}

func roundAgo(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}
