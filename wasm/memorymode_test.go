package wasm

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// runModes feeds n runs to c as a wasmtime engine would: each run takes
// the mode c chooses, and run gives its time and time inside the module.
// It returns how many runs were given each mode.
func runModes(c *memoryModes, module string, n int, run func(memoryMode) (d, inside time.Duration)) [2]int {
	var got [2]int
	for range n {
		mode := c.choose(module, DefaultMemoryBytes)
		got[mode]++
		d, inside := run(mode)
		c.observe(module, mode, d, inside)
	}
	return got
}

// A Go-built module's short tasks, ~1 ms of a 1.5 ms task outside the
// module when guarded and 0.1 ms when checked, move to checked code once
// it is measured faster, and stay there.
func TestMemoryModes_ShortTasksMoveToCheckedCode(t *testing.T) {
	c := newMemoryModes()
	c.compiled("go", 10*ms, false)
	got := runModes(c, "go", 1000, func(m memoryMode) (time.Duration, time.Duration) {
		if m == modeChecked {
			return 600 * time.Microsecond, 500 * time.Microsecond
		}
		return 1500 * time.Microsecond, 500 * time.Microsecond
	})
	if got[modeChecked] < 950 {
		t.Fatalf("runs per mode %v: want at least 950 of 1000 checked", got)
	}
	if mode := c.choose("go", DefaultMemoryBytes); mode != modeChecked {
		t.Fatalf("settled on %v", mode)
	}
}

// A module whose runs spend little time outside it (a long kernel) never
// tries checked code: its checks could only cost.
func TestMemoryModes_LongTasksStayGuarded(t *testing.T) {
	c := newMemoryModes()
	got := runModes(c, "gemm", 100, func(memoryMode) (time.Duration, time.Duration) { return 300 * ms, 299 * ms })
	if got[modeChecked] != 0 {
		t.Fatalf("runs per mode %v: want none checked", got)
	}
}

// Checked code measured slower than guarded code is dropped after its
// trials (until a retrial, a second of time outside the module later).
func TestMemoryModes_SlowerCheckedCodeIsDropped(t *testing.T) {
	c := newMemoryModes()
	got := runModes(c, "nbody", 200, func(m memoryMode) (time.Duration, time.Duration) {
		if m == modeChecked {
			return 9 * ms, 8900 * time.Microsecond // memory-heavy: the checks cost more than they save
		}
		return 5 * ms, 4 * ms
	})
	if got[modeChecked] != modeTrials+1 { // the trials and the cold first run
		t.Fatalf("runs per mode %v: want %d checked", got, modeTrials+1)
	}
}

// checkedSlowThenFast runs a module whose guarded runs take 5 ms (1 ms
// outside the module) and whose checked runs take 20 ms while *slow, then
// 2 ms.
func checkedSlowThenFast(slow *bool) func(memoryMode) (time.Duration, time.Duration) {
	return func(m memoryMode) (time.Duration, time.Duration) {
		if m == modeChecked && *slow {
			return 20 * ms, 19 * ms
		}
		if m == modeChecked {
			return 2 * ms, 1900 * time.Microsecond
		}
		return 5 * ms, 4 * ms
	}
}

// Checked code that lost its comparison (say to descheduled trials) is
// compared again once the guarded runs have spent another second outside
// the module, then two more, and so on.
func TestMemoryModes_CheckedCodeThatLostIsComparedAgainLater(t *testing.T) {
	c := newMemoryModes()
	c.compiled("m", 10*ms, false)
	slowChecked := true
	run := checkedSlowThenFast(&slowChecked)
	if got := runModes(c, "m", 500, run); got[modeChecked] != modeTrials+1 {
		t.Fatalf("first 500 runs per mode %v: want one comparison's %d checked", got, modeTrials+1)
	}
	slowChecked = false
	got := runModes(c, "m", 2000, run)
	if got[modeChecked] < 1000 {
		t.Fatalf("after checked code got faster: runs per mode %v, want it compared again and kept", got)
	}
}

// Checked code needs a second compile: it is tried only once the module's
// runs have spent, outside the module, what its first compile took (what
// checked code could have saved by then), or at once if the disk cache
// has it.
func TestMemoryModes_CheckedCodeWaitsForRunsToPayItsCompile(t *testing.T) {
	c := newMemoryModes()
	c.compiled("big", 100*ms, false)
	run := func(memoryMode) (time.Duration, time.Duration) { return 5 * ms, 4 * ms } // 1 ms outside
	got := runModes(c, "big", 99, run)
	if got[modeChecked] != 0 {
		t.Fatalf("after 99 ms outside the module: runs per mode %v, want none checked", got)
	}
	if got = runModes(c, "big", 2, run); got[modeChecked] != 1 {
		t.Fatalf("after 100 ms outside the module: runs per mode %v, want a checked trial", got)
	}
	c.compiled("cached", 100*ms, true)
	if got = runModes(c, "cached", modeTrials+2, run); got[modeChecked] != 1 {
		t.Fatalf("checked code in the disk cache: runs per mode %v, want a checked trial after the guarded ones", got)
	}
}

// A module settled on checked code goes back to guarded code for good
// when its runs turn out long: its checks may then cost far more than the
// time they save outside the module. One long run (a task descheduled on
// a busy machine) does not move it.
func TestMemoryModes_LongRunsOfCheckedModuleRevertToGuarded(t *testing.T) {
	c := newMemoryModes()
	runModes(c, "m", 50, func(m memoryMode) (time.Duration, time.Duration) {
		if m == modeChecked {
			return 600 * time.Microsecond, 500 * time.Microsecond
		}
		return 1500 * time.Microsecond, 500 * time.Microsecond
	})
	if mode := c.choose("m", DefaultMemoryBytes); mode != modeChecked {
		t.Fatalf("settled on %v, want checked", mode)
	}
	c.observe("m", modeChecked, 50*ms, 50*ms) // 50x the 1 ms guarded runs spent outside
	if mode := c.choose("m", DefaultMemoryBytes); mode != modeChecked {
		t.Fatalf("after one 50 ms run: %v, want checked still", mode)
	}
	for range 5 {
		c.observe("m", modeChecked, 50*ms, 50*ms)
	}
	if mode := c.choose("m", DefaultMemoryBytes); mode != modeGuarded {
		t.Fatalf("after 6 runs of 50 ms: %v, want guarded", mode)
	}
}

// Checked code's memory is a page short of 4 GiB: a task allowed more
// runs guarded, whatever the module's mode.
func TestMemoryModes_LimitPastCheckedMaximumRunsGuarded(t *testing.T) {
	c := newMemoryModes()
	checked := modeChecked
	c.override = &checked
	if mode := c.choose("m", checkedMaxMemory); mode != modeChecked {
		t.Fatalf("limit %d: %v, want checked", uint64(checkedMaxMemory), mode)
	}
	if mode := c.choose("m", checkedMaxMemory+1); mode != modeGuarded {
		t.Fatalf("limit %d: %v, want guarded", uint64(checkedMaxMemory+1), mode)
	}
}

// Each decision is logged once, naming the module, the mode and the
// medians that decided it: a lost comparison, a retrial won, and nothing
// for the runs in between.
func TestMemoryModes_LogsEachDecisionOnce(t *testing.T) {
	var logged bytes.Buffer
	c := newMemoryModes()
	c.log = slog.New(slog.NewTextHandler(&logged, nil))
	c.compiled("m", 10*ms, false)
	slowChecked := true
	run := checkedSlowThenFast(&slowChecked)
	runModes(c, "m", 500, run)
	slowChecked = false
	runModes(c, "m", 2000, run)
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want a lost comparison and a settled one:\n%s", len(lines), logged.String())
	}
	for i, want := range []string{
		`msg="memory mode: checked code lost, guarded until a retrial" module=m checked_median=20ms guarded_median=5ms losses=1`,
		`msg="memory mode settled" module=m mode=checked checked_median=2ms guarded_median=5ms`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: %s\nwant it to contain: %s", i+1, lines[i], want)
		}
	}
}

// A module whose runs are almost all inside it settles guarded, and says
// why.
func TestMemoryModes_LogsWhyLongTasksStayGuarded(t *testing.T) {
	var logged bytes.Buffer
	c := newMemoryModes()
	c.log = slog.New(slog.NewTextHandler(&logged, nil))
	runModes(c, "gemm", 100, func(memoryMode) (time.Duration, time.Duration) { return 300 * ms, 299 * ms })
	if got := logged.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `module=gemm mode=guarded`) ||
		!strings.Contains(got, "under a tenth of its runs outside the module") {
		t.Fatalf("logged:\n%s\nwant one line settling gemm guarded, saying why", got)
	}
}
