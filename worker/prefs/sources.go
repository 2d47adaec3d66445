package prefs

import (
	"errors"
	"io"
	"time"
)

// ErrUnavailable wraps every "this machine does not say" of a source.
var ErrUnavailable = errors.New("cannot be read here")

// IdleSource says how long the machine has had no keyboard or mouse input.
type IdleSource interface {
	IdleFor(now time.Time) (time.Duration, error)
}

// BatterySource says whether the machine runs on battery.
type BatterySource interface {
	OnBattery() (bool, error)
}

// LoadSource says what percent of the machine's CPU time programs other
// than grid (the worker's own processes) used since the last call.
type LoadSource interface {
	OtherCPU(grid []int) (float64, error)
}

// Sources are where observations come from. A nil source cannot be read.
type Sources struct {
	Idle    IdleSource
	Battery BatterySource
	Load    LoadSource
	// Describe says, once, what each source is ("logind", "no battery
	// found", ...) or why it cannot be read: the worker logs it at start.
	Describe map[string]string
}

// Observe reads every source once.
func (s Sources) Observe(now time.Time, userPaused bool, grid []int) Observation {
	o := Observation{Now: now, UserPaused: userPaused}
	o.Idle.Err, o.OnBattery.Err, o.OtherCPU.Err = errNoSource, errNoSource, errNoSource
	if s.Idle != nil {
		o.Idle.Value, o.Idle.Err = s.Idle.IdleFor(now)
	}
	if s.Battery != nil {
		o.OnBattery.Value, o.OnBattery.Err = s.Battery.OnBattery()
	}
	if s.Load != nil {
		o.OtherCPU.Value, o.OtherCPU.Err = s.Load.OtherCPU(grid)
	}
	return o
}

var errNoSource = errors.New("no source on this platform: " + ErrUnavailable.Error())

// Close stops sources that hold resources (input device readers).
func (s Sources) Close() error {
	var errs []error
	for _, src := range []any{s.Idle, s.Battery, s.Load} {
		if c, ok := src.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
