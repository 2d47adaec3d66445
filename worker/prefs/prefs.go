package prefs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefs are a volunteer's preferences. The zero value is not valid: start
// from Default.
type Prefs struct {
	// RunWhen is "always" or "idle": only after IdleAfter without keyboard
	// or mouse input.
	RunWhen   string
	IdleAfter time.Duration
	// MaxCPU caps the executors at this percent of the machine's CPU time
	// (all cores), 1..100.
	MaxCPU int
	// Schedule lists the windows in local time in which the worker may run
	// ("Mon-Fri 18:00-08:00", "Sat-Sun"); empty means any time.
	Schedule []Window
	// OnBattery is "pause" or "run".
	OnBattery string
	// PauseWhenBusy pauses while other programs use more than this percent
	// of the machine's CPU; 0 never.
	PauseWhenBusy int
	// MaxMemory bounds the memory caps of the tasks running at once, and
	// MaxDisk the shard store and caches, in bytes; 0 means no limit.
	MaxMemory, MaxDisk int64
	// PauseKeep is how long a pause keeps the leased tasks before they are
	// handed back for another worker to run.
	PauseKeep time.Duration
}

// Default is what a worker does unless told otherwise: run always, at most
// all of the CPU, not on battery, keeping tasks through a pause of 10m.
func Default() Prefs {
	return Prefs{RunWhen: RunAlways, IdleAfter: 5 * time.Minute, MaxCPU: 100, OnBattery: BatteryPause, PauseKeep: 10 * time.Minute}
}

// Values of RunWhen and OnBattery.
const (
	RunAlways    = "always"
	RunIdle      = "idle"
	BatteryPause = "pause"
	BatteryRun   = "run"
)

// Keys are the preference keys, as in prefs.toml and `--set KEY=VALUE`;
// flags spell them with dashes.
var Keys = []string{"run_when", "idle_after", "max_cpu", "schedule", "on_battery", "pause_when_busy", "max_memory", "max_disk", "pause_keep"}

// Help says what each key takes, for flag usage and errors.
var Help = map[string]string{
	"run_when":        `"always" or "idle" (only after idle_after without keyboard or mouse input)`,
	"idle_after":      `how long without input makes the machine idle, e.g. "5m"`,
	"max_cpu":         "percent of the machine's CPU time the executors may use, 1..100",
	"schedule":        `windows in local time the worker may run in, e.g. "Mon-Fri 18:00-08:00, Sat-Sun" (empty: any time)`,
	"on_battery":      `"pause" or "run"`,
	"pause_when_busy": "pause while other programs use more than this percent of the CPU, 0..100 (0: never)",
	"max_memory":      `memory for all running tasks together, e.g. "4GiB" (0: no limit)`,
	"max_disk":        `disk for the shard store and caches, e.g. "20GiB" (0: no limit)`,
	"pause_keep":      `how long a pause keeps leased tasks before handing them back, e.g. "10m"`,
}

// ErrUnknownKey is returned for a key that is not a preference.
var ErrUnknownKey = errors.New("unknown preference")

// Set sets one preference from its text form (a flag, `--set`, a TOML
// string). Errors name the key and the value.
// A refused value changes nothing.
func (p *Prefs) Set(key, value string) error {
	q := *p
	if err := q.set(key, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("%s = %q: %w", key, value, err)
	}
	*p = q
	return nil
}

func (p *Prefs) set(key, v string) error {
	var err error
	switch key {
	case "run_when":
		p.RunWhen, err = oneOf(v, RunAlways, RunIdle)
	case "idle_after":
		p.IdleAfter, err = duration(v, 0)
	case "max_cpu":
		p.MaxCPU, err = percent(v, 1)
	case "schedule":
		p.Schedule, err = ParseSchedule(splitSchedule(v))
	case "on_battery":
		p.OnBattery, err = oneOf(v, BatteryPause, BatteryRun)
	case "pause_when_busy":
		p.PauseWhenBusy, err = percent(v, 0)
	case "max_memory":
		p.MaxMemory, err = ParseSize(v)
	case "max_disk":
		p.MaxDisk, err = ParseSize(v)
	case "pause_keep":
		p.PauseKeep, err = duration(v, time.Second)
	default:
		return fmt.Errorf("%w (the keys are %s)", ErrUnknownKey, strings.Join(Keys, ", "))
	}
	return err
}

// Get is a preference in the text form Set takes.
func (p *Prefs) Get(key string) string {
	switch key {
	case "run_when":
		return p.RunWhen
	case "idle_after":
		return p.IdleAfter.String()
	case "max_cpu":
		return strconv.Itoa(p.MaxCPU)
	case "schedule":
		s := make([]string, len(p.Schedule))
		for i, w := range p.Schedule {
			s[i] = w.String()
		}
		return strings.Join(s, ", ")
	case "on_battery":
		return p.OnBattery
	case "pause_when_busy":
		return strconv.Itoa(p.PauseWhenBusy)
	case "max_memory":
		return FormatSize(p.MaxMemory)
	case "max_disk":
		return FormatSize(p.MaxDisk)
	case "pause_keep":
		return p.PauseKeep.String()
	}
	return ""
}

// Map is every preference in text form, by key.
func (p *Prefs) Map() map[string]string {
	m := make(map[string]string, len(Keys))
	for _, k := range Keys {
		m[k] = p.Get(k)
	}
	return m
}

func oneOf(v string, allowed ...string) (string, error) {
	if slices.Contains(allowed, v) {
		return v, nil
	}
	return "", fmt.Errorf("want %s", strings.Join(quoteAll(allowed), " or "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

func duration(v string, least time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New(`want a duration such as "90s", "5m" or "1h30m"`)
	}
	if d < least {
		return 0, fmt.Errorf("want at least %s", least)
	}
	return d, nil
}

func percent(v string, least int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil || n < least || n > 100 {
		return 0, fmt.Errorf("want a whole percent from %d to 100", least)
	}
	return n, nil
}

// ParseSize reads a byte count: a plain number, or one with KiB, MiB, GiB,
// TiB (binary) or kB, MB, GB, TB (decimal).
func ParseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	s, mult := strings.TrimSpace(v), 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f*mult, 0) || f*mult > math.MaxInt64/2 {
		return 0, errors.New(`want a size such as "512MiB", "4GiB" or "0" (no limit)`)
	}
	return int64(f * mult), nil
}

// FormatSize writes a size as ParseSize reads it: "0", "4GiB", "1536MiB".
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// splitSchedule splits a schedule given as one string (a flag, `--set`) at
// commas and semicolons; "" is an empty schedule.
func splitSchedule(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
