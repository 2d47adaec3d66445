package prefs

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// SystemSources are this machine's sources: idle time is IOKit's
// HIDIdleTime and the power source IOKit's, both read through the tools
// that ship with macOS (ioreg, pmset), since the worker builds without
// cgo. Other programs' CPU use is not read on macOS.
func SystemSources() Sources {
	return Sources{Idle: hidIdle{}, Battery: pmsetBattery{}, Describe: map[string]string{
		"idle": "IOKit HIDIdleTime (ioreg)", "battery": "IOKit power sources (pmset)",
		"load": "cannot be read on macOS: pause_when_busy is ignored",
	}}
}

var hidIdleRE = regexp.MustCompile(`"HIDIdleTime" = (\d+)`)

type hidIdle struct{}

func (hidIdle) IdleFor(time.Time) (time.Duration, error) {
	out, err := run("ioreg", "-c", "IOHIDSystem", "-d", "4")
	if err != nil {
		return 0, err
	}
	m := hidIdleRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ioreg: no HIDIdleTime: idle time %w", ErrUnavailable)
	}
	ns, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ioreg: HIDIdleTime %q", m[1])
	}
	return time.Duration(ns), nil
}

type pmsetBattery struct{}

func (pmsetBattery) OnBattery() (bool, error) {
	out, err := run("pmset", "-g", "batt")
	if err != nil {
		return false, err
	}
	return bytes.Contains(out, []byte("'Battery Power'")), nil
}

func run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
