package prefs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SystemSources are this machine's sources. Idle time comes from logind's
// IdleHint and IdleSinceHint (through loginctl, which asks logind over
// D-Bus) where it answers, else from the input devices under /dev/input
// the worker may read (event times), else from the X screensaver
// (xprintidle), else it cannot be read. Battery from
// /sys/class/power_supply; load from /proc.
func SystemSources() Sources {
	s := Sources{Battery: sysfsBattery{root: "/sys/class/power_supply"}, Load: &procLoad{root: "/proc"}, Describe: map[string]string{}}
	s.Idle, s.Describe["idle"] = linuxIdle()
	s.Describe["battery"] = "/sys/class/power_supply"
	s.Describe["load"] = "/proc/stat"
	return s
}

func linuxIdle() (IdleSource, string) {
	now := time.Now()
	var tried []string
	if src := (logindIdle{}); try(src, now) {
		return src, "logind IdleHint (loginctl)"
	}
	tried = append(tried, "logind (loginctl show)")
	if src := openInputDevices("/dev/input", now); src != nil {
		return src, fmt.Sprintf("input events from %d devices under /dev/input", src.n)
	}
	tried = append(tried, "/dev/input (no readable event device)")
	if src := (xIdle{}); os.Getenv("DISPLAY") != "" && try(src, now) {
		return src, "X screensaver (xprintidle)"
	}
	tried = append(tried, "X screensaver (xprintidle)")
	return unreadableIdle{tried: tried}, "cannot be read: tried " + strings.Join(tried, ", ") + "; run_when = idle treats the machine as in use"
}

func try(src IdleSource, now time.Time) bool {
	_, err := src.IdleFor(now)
	return err == nil
}

type unreadableIdle struct{ tried []string }

func (u unreadableIdle) IdleFor(time.Time) (time.Duration, error) {
	return 0, fmt.Errorf("idle time %w (tried %s)", ErrUnavailable, strings.Join(u.tried, ", "))
}

// logindIdle asks logind for the machine's idle hint: yes once every
// session is idle (a desktop sets it after its own idle delay), with the
// time it became so.
type logindIdle struct{}

func (logindIdle) IdleFor(now time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "loginctl", "show", "-p", "IdleHint", "-p", "IdleSinceHint").Output()
	if err != nil {
		return 0, fmt.Errorf("loginctl: %w", err)
	}
	return parseLogindIdle(out, now)
}

// parseLogindIdle reads `loginctl show -p IdleHint -p IdleSinceHint`.
func parseLogindIdle(out []byte, now time.Time) (time.Duration, error) {
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	hint, ok := props["IdleHint"]
	if !ok {
		return 0, fmt.Errorf("loginctl: no IdleHint in %q", out)
	}
	if hint != "yes" {
		return 0, nil
	}
	us, err := strconv.ParseInt(props["IdleSinceHint"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("loginctl: IdleSinceHint %q", props["IdleSinceHint"])
	}
	if us == 0 {
		return time.Duration(1<<62 - 1), nil // idle since always: no session has ever been active
	}
	return max(now.Sub(time.UnixMicro(us)), 0), nil
}

// inputIdle reads key and pointer events from the input devices it can
// open and keeps the time of the last.
type inputIdle struct {
	n      int
	start  time.Time
	last   atomic.Int64 // unix ns of the last event, 0 if none
	files  []*os.File
	closed atomic.Bool
}

// inputEventSize is struct input_event on 64-bit Linux: a timeval, type,
// code, value.
const inputEventSize = 24

func openInputDevices(dir string, now time.Time) *inputIdle {
	paths, _ := filepath.Glob(filepath.Join(dir, "event*"))
	src := &inputIdle{start: now}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		src.files = append(src.files, f)
	}
	if len(src.files) == 0 {
		return nil
	}
	src.n = len(src.files)
	for _, f := range src.files {
		go src.read(f)
	}
	return src
}

func (s *inputIdle) read(f *os.File) {
	r := bufio.NewReaderSize(f, 64*inputEventSize)
	var ev [inputEventSize]byte
	for {
		if _, err := ioReadFull(r, ev[:]); err != nil {
			return
		}
		if typ := binary.LittleEndian.Uint16(ev[16:]); typ != 0 { // 0 is EV_SYN, a separator
			s.last.Store(time.Now().UnixNano())
		}
	}
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *inputIdle) IdleFor(now time.Time) (time.Duration, error) {
	last := s.start
	if ns := s.last.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	return max(now.Sub(last), 0), nil
}

// Close closes the devices; their readers end with their next read. It
// does not wait for them: a device the poller cannot watch would keep a
// blocked read, and the worker must not hang on its way out for it.
func (s *inputIdle) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for _, f := range s.files {
		_ = f.Close()
	}
	return nil
}

// xIdle asks the X screensaver extension through xprintidle.
type xIdle struct{}

func (xIdle) IdleFor(time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "xprintidle").Output()
	if err != nil {
		return 0, fmt.Errorf("xprintidle: %w", err)
	}
	ms, err := strconv.ParseInt(string(bytes.TrimSpace(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("xprintidle: %q", out)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// sysfsBattery reads /sys/class/power_supply: on battery when no mains
// (or USB) supply is online and a battery is discharging. A machine with
// no supplies at all (a desktop, a VM) is on mains.
type sysfsBattery struct{ root string }

func (b sysfsBattery) OnBattery() (bool, error) {
	dirs, err := os.ReadDir(b.root)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	discharging := false
	for _, d := range dirs {
		read := func(name string) string {
			v, _ := os.ReadFile(filepath.Join(b.root, d.Name(), name))
			return strings.TrimSpace(string(v))
		}
		switch read("type") {
		case "Mains", "USB", "USB_C", "USB_PD":
			if read("online") == "1" {
				return false, nil
			}
		case "Battery":
			discharging = discharging || read("status") == "Discharging"
		}
	}
	return discharging, nil
}

// procLoad measures other programs' CPU use from /proc/stat (the whole
// machine) less the grid's processes (/proc/PID/stat), between calls.
type procLoad struct {
	root string

	mu         sync.Mutex
	busy, all  int64 // machine ticks at the last call
	grid       int64 // the grid processes' ticks then
	gridPIDs   []int
	haveSample bool
}

func (l *procLoad) OtherCPU(grid []int) (float64, error) {
	busy, all, err := l.machineTicks()
	if err != nil {
		return 0, err
	}
	g := l.gridTicks(grid)
	l.mu.Lock()
	defer l.mu.Unlock()
	prevBusy, prevAll, prevGrid, prevPIDs, had := l.busy, l.all, l.grid, l.gridPIDs, l.haveSample
	l.busy, l.all, l.grid, l.gridPIDs, l.haveSample = busy, all, g, append([]int(nil), grid...), true
	if !had || all <= prevAll || !sameInts(prevPIDs, grid) {
		return 0, errors.New("load: no earlier sample yet")
	}
	other := float64((busy-prevBusy)-(g-prevGrid)) / float64(all-prevAll) * 100
	return min(max(other, 0), 100), nil
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// machineTicks reads the "cpu" line of /proc/stat: busy and all ticks.
func (l *procLoad) machineTicks() (busy, all int64, err error) {
	b, err := os.ReadFile(filepath.Join(l.root, "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("load: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("load: unexpected %s/stat", l.root)
	}
	for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		v, _ := strconv.ParseInt(s, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all, nil
}

// gridTicks sums utime+stime of the grid's processes (gone ones count 0).
func (l *procLoad) gridTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join(l.root, strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[14-3], 10, 64)
		s, _ := strconv.ParseInt(f[15-3], 10, 64)
		sum += u + s
	}
	return sum
}
