package prefs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseLogindIdle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	since := now.Add(-7 * time.Minute)
	for _, c := range []struct {
		out  string
		want time.Duration
		err  bool
	}{
		{"IdleHint=no\nIdleSinceHint=0\n", 0, false},
		{fmt.Sprintf("IdleHint=yes\nIdleSinceHint=%d\n", since.UnixMicro()), 7 * time.Minute, false},
		{"IdleHint=yes\nIdleSinceHint=0\n", 1<<62 - 1, false},
		{"Something=else\n", 0, true},
	} {
		got, err := parseLogindIdle([]byte(c.out), now)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: %v, %v; want %v (error %v)", c.out, got, err, c.want, c.err)
		}
	}
}

func TestSysfsBattery(t *testing.T) {
	supply := func(root, name string, files map[string]string) {
		os.MkdirAll(filepath.Join(root, name), 0o755)
		for f, v := range files {
			os.WriteFile(filepath.Join(root, name, f), []byte(v+"\n"), 0o644)
		}
	}
	desktop := t.TempDir()
	if on, err := (sysfsBattery{root: filepath.Join(desktop, "none")}).OnBattery(); on || err != nil {
		t.Errorf("no power_supply: on battery %v, %v", on, err)
	}
	laptop := t.TempDir()
	supply(laptop, "AC", map[string]string{"type": "Mains", "online": "0"})
	supply(laptop, "BAT0", map[string]string{"type": "Battery", "status": "Discharging"})
	if on, err := (sysfsBattery{root: laptop}).OnBattery(); !on || err != nil {
		t.Errorf("unplugged laptop: on battery %v, %v", on, err)
	}
	supply(laptop, "AC", map[string]string{"online": "1"})
	if on, _ := (sysfsBattery{root: laptop}).OnBattery(); on {
		t.Error("plugged-in laptop counts as on battery")
	}
}

func TestProcLoad_OtherProgramsCPU(t *testing.T) {
	root := t.TempDir()
	write := func(stat, grid string) {
		os.WriteFile(filepath.Join(root, "stat"), []byte(stat), 0o644)
		os.MkdirAll(filepath.Join(root, "42"), 0o755)
		os.WriteFile(filepath.Join(root, "42", "stat"), []byte(grid), 0o644)
	}
	// Fields after "(comm)": state, then 10 more, then utime (14) and stime (15).
	gridStat := func(ticks int) string { return fmt.Sprintf("42 (peer grid) R 1 1 1 0 0 0 0 0 0 0 %d 0 0 0", ticks) }
	l := &procLoad{root: root}
	write("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 ...\n", gridStat(50))
	if _, err := l.OtherCPU([]int{42}); err == nil {
		t.Fatal("a first sample gave a load")
	}
	// 1000 more ticks: 600 busy of which the grid 200 -> others 40%.
	write("cpu  500 0 300 1200 0 0 0 0 0 0\n", gridStat(250))
	got, err := l.OtherCPU([]int{42})
	if err != nil || got != 40 {
		t.Fatalf("other CPU %v, %v; want 40", got, err)
	}
}

func TestInputIdle_CountsFromTheLastEvent(t *testing.T) {
	dir := t.TempDir()
	if openInputDevices(dir, time.Now()) != nil {
		t.Fatal("no devices gave a source")
	}
	// A fifo stands for an event device.
	path := filepath.Join(dir, "event0")
	if err := mkfifo(path); err != nil {
		t.Skip("no fifo:", err)
	}
	start := time.Now()
	opened := make(chan *inputIdle, 1)
	go func() { opened <- openInputDevices(dir, start) }()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	src := <-opened
	defer src.Close()
	defer w.Close()
	if d, _ := src.IdleFor(start.Add(time.Hour)); d != time.Hour {
		t.Fatalf("no event yet: idle %v, want an hour (since the start)", d)
	}
	var ev [inputEventSize]byte
	ev[16] = 1 // EV_KEY
	w.Write(ev[:])
	deadline := time.Now().Add(10 * time.Second)
	for src.last.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not seen")
		}
		time.Sleep(time.Millisecond)
	}
	if d, _ := src.IdleFor(time.Now()); d > time.Minute {
		t.Fatalf("idle %v right after an event", d)
	}
}
