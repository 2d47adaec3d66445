package prefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSet_ErrorsNameTheKeyAndTheValue(t *testing.T) {
	for _, c := range []struct{ key, value, want string }{
		{"run_when", "sometimes", `run_when = "sometimes": want "always" or "idle"`},
		{"idle_after", "soon", `idle_after = "soon": want a duration`},
		{"max_cpu", "0", `max_cpu = "0": want a whole percent from 1 to 100`},
		{"max_cpu", "150", `max_cpu = "150"`},
		{"schedule", "Mon-Fry", `schedule = "Mon-Fry": window "Mon-Fry": day "Fry"`},
		{"schedule", "Mon 18:00-25:00", `time "25:00"`},
		{"on_battery", "maybe", `on_battery = "maybe": want "pause" or "run"`},
		{"pause_when_busy", "-1", `pause_when_busy = "-1"`},
		{"max_memory", "lots", `max_memory = "lots": want a size`},
		{"pause_keep", "0s", `pause_keep = "0s": want at least 1s`},
		{"max_cpus", "50", `max_cpus = "50": unknown preference`},
	} {
		p := Default()
		err := p.Set(c.key, c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set(%s, %q) = %v, want it to say %q", c.key, c.value, err, c.want)
		}
		if p.Get("max_cpu") != "100" || p.RunWhen != RunAlways {
			t.Errorf("a refused Set(%s, %q) changed the preferences: %v", c.key, c.value, p.Map())
		}
	}
}

func TestSet_ReadsEveryKeyAndGetWritesItBack(t *testing.T) {
	p := Default()
	values := map[string]string{
		"run_when": "idle", "idle_after": "2m0s", "max_cpu": "50", "schedule": "Mon-Fri 18:00-08:00, Sat-Sun",
		"on_battery": "run", "pause_when_busy": "25", "max_memory": "4GiB", "max_disk": "20GiB", "pause_keep": "15m0s",
	}
	for k, v := range values {
		if err := p.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range values {
		if got := p.Get(k); got != v {
			t.Errorf("Get(%s) = %q, want %q", k, got, v)
		}
	}
	if p.MaxMemory != 4<<30 || p.MaxCPU != 50 || len(p.Schedule) != 2 {
		t.Errorf("parsed %+v", p)
	}
}

func TestLoadFile_AppliesTheFileAndNamesItsMistakes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	p := Default()
	if err := LoadFile(path, &p); err != nil {
		t.Fatalf("a missing file: %v", err)
	}
	os.WriteFile(path, []byte("run_when = \"idle\"\nmax_cpu = 40\nschedule = [\"Mon-Fri 18:00-08:00\", \"Sat-Sun\"]\nmax_memory = \"2GiB\"\n"), 0o600)
	if err := LoadFile(path, &p); err != nil {
		t.Fatal(err)
	}
	if p.RunWhen != RunIdle || p.MaxCPU != 40 || len(p.Schedule) != 2 || p.MaxMemory != 2<<30 {
		t.Fatalf("loaded %v", p.Map())
	}
	// Written back and read again: the same.
	if err := WriteFile(path, &p); err != nil {
		t.Fatal(err)
	}
	q := Default()
	if err := LoadFile(path, &q); err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys {
		if p.Get(k) != q.Get(k) {
			t.Errorf("%s: %q written, %q read back", k, p.Get(k), q.Get(k))
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("prefs.toml mode %v, want 0600", fi.Mode().Perm())
	}
	os.WriteFile(path, []byte("max_cpu = 500\n"), 0o600)
	if err := LoadFile(path, &q); err == nil || !strings.Contains(err.Error(), path+": max_cpu = \"500\"") {
		t.Errorf("bad value: %v", err)
	}
	os.WriteFile(path, []byte("nice = 19\n"), 0o600)
	if err := LoadFile(path, &q); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
}

// at is a local time in a week whose Monday is 2026-11-30.
func at(day time.Weekday, hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2026-11-29 "+hhmm, time.Local) // a Sunday
	if err != nil {
		panic(err)
	}
	return t.AddDate(0, 0, int(day))
}

func TestSchedule_WindowsInLocalTime(t *testing.T) {
	ws, err := ParseSchedule([]string{"Mon-Fri 18:00-08:00", "Sat-Sun"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{at(time.Monday, "12:00"), false},
		{at(time.Monday, "18:00"), true},
		{at(time.Tuesday, "07:59"), true}, // Monday's night
		{at(time.Tuesday, "08:00"), false},
		{at(time.Monday, "07:00"), false}, // Sunday's all day ends at midnight
		{at(time.Sunday, "23:59"), true},
		{at(time.Saturday, "07:00"), true},
		{at(time.Friday, "23:00"), true},
		{at(time.Friday, "12:00"), false},
	} {
		if got := InSchedule(ws, c.t); got != c.want {
			t.Errorf("%s: in schedule %v, want %v", c.t.Format("Mon 15:04"), got, c.want)
		}
	}
	if next, ok := NextOpen(ws, at(time.Wednesday, "09:30")); !ok || !next.Equal(at(time.Wednesday, "18:00")) {
		t.Errorf("next open after Wed 09:30: %v", next)
	}
	every, _ := ParseSchedule([]string{"09:00-17:00"})
	if !InSchedule(every, at(time.Sunday, "10:00")) || InSchedule(every, at(time.Sunday, "17:00")) {
		t.Error("a time-only window is every day, end excluded")
	}
	if !InSchedule(nil, at(time.Monday, "03:00")) {
		t.Error("an empty schedule is always open")
	}
}

// TestDecide: each preference pauses and resumes at the right moments, and
// says why.
func TestDecide(t *testing.T) {
	idle := func(d time.Duration) Reading[time.Duration] { return Reading[time.Duration]{Value: d} }
	cantIdle := Reading[time.Duration]{Err: errors.New("idle time " + ErrUnavailable.Error())}
	battery := func(on bool) Reading[bool] { return Reading[bool]{Value: on} }
	load := func(p float64) Reading[float64] { return Reading[float64]{Value: p} }
	with := func(kv ...string) Prefs {
		p := Default()
		for i := 0; i < len(kv); i += 2 {
			if err := p.Set(kv[i], kv[i+1]); err != nil {
				panic(err)
			}
		}
		return p
	}
	weekdayNoon, weekdayNight := at(time.Wednesday, "12:00"), at(time.Wednesday, "22:00")
	for _, c := range []struct {
		name   string
		prefs  Prefs
		obs    Observation
		state  State
		reason string
		share  float64
	}{
		{"defaults run", Default(), Observation{Now: weekdayNoon}, Running, "running", 1},
		{"an explicit pause", Default(), Observation{Now: weekdayNoon, UserPaused: true}, Paused, "paused by `peergrid worker pause`", 0},
		{"outside the schedule", with("schedule", "Mon-Fri 18:00-08:00"), Observation{Now: weekdayNoon}, Paused, "paused: outside the schedule until Wed 18:00", 0},
		{"inside the schedule", with("schedule", "Mon-Fri 18:00-08:00"), Observation{Now: weekdayNight}, Running, "running", 1},
		{"on battery", Default(), Observation{Now: weekdayNoon, OnBattery: battery(true)}, Paused, "paused: on battery", 0},
		{"on battery, told to run", with("on_battery", "run"), Observation{Now: weekdayNoon, OnBattery: battery(true)}, Running, "running", 1},
		{"on mains", Default(), Observation{Now: weekdayNoon, OnBattery: battery(false)}, Running, "running", 1},
		{"battery unreadable counts as mains", Default(), Observation{Now: weekdayNoon, OnBattery: Reading[bool]{Value: true, Err: errors.New("x")}}, Running, "running", 1},
		{"idle-only, user active 40s ago", with("run_when", "idle"), Observation{Now: weekdayNoon, Idle: idle(40 * time.Second)}, Waiting, "waiting: user active 40s ago (runs after 5m0s idle)", 0},
		{"idle-only, idle long enough", with("run_when", "idle"), Observation{Now: weekdayNoon, Idle: idle(5 * time.Minute)}, Running, "running", 1},
		{"idle-only, idle unreadable", with("run_when", "idle"), Observation{Now: weekdayNoon, Idle: cantIdle}, Waiting, "waiting: cannot tell whether the machine is idle", 0},
		{"always ignores input", Default(), Observation{Now: weekdayNoon, Idle: idle(0)}, Running, "running", 1},
		{"others busy", with("pause_when_busy", "25"), Observation{Now: weekdayNoon, OtherCPU: load(63)}, Paused, "paused: other programs use 63% of the CPU (pause_when_busy = 25%)", 0},
		{"others quiet", with("pause_when_busy", "25"), Observation{Now: weekdayNoon, OtherCPU: load(10)}, Running, "running", 1},
		{"busy check off", Default(), Observation{Now: weekdayNoon, OtherCPU: load(99)}, Running, "running", 1},
		{"throttled", with("max_cpu", "50"), Observation{Now: weekdayNoon}, Running, "running, throttled to 50% of the CPU", 0.5},
		{"the pause outranks the rest", with("run_when", "idle", "schedule", "Sat-Sun"), Observation{Now: weekdayNoon, UserPaused: true, OnBattery: battery(true)}, Paused, "paused by", 0},
		{"the schedule outranks the battery", with("schedule", "Sat-Sun"), Observation{Now: weekdayNoon, OnBattery: battery(true)}, Paused, "outside the schedule", 0},
		{"the battery outranks input", with("run_when", "idle"), Observation{Now: weekdayNoon, OnBattery: battery(true), Idle: idle(0)}, Paused, "on battery", 0},
	} {
		d := Decide(c.prefs, c.obs)
		if d.State != c.state || !strings.Contains(d.Reason, c.reason) || d.CPUShare != c.share {
			t.Errorf("%s: %+v, want %s %q share %v", c.name, d, c.state, c.reason, c.share)
		}
	}
}
