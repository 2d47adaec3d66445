package wasm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestStatmResident(t *testing.T) {
	for _, c := range []struct {
		line string
		want uint64
		ok   bool
	}{
		{"12345 678 90 1 0 2 0\n", 678 * 4096, true},
		{"1 0 0 0 0 0 0", 0, true},
		{"12345", 0, false},
		{"12345 x 1", 0, false},
		{"", 0, false},
	} {
		got, ok := statmResident([]byte(c.line), 4096)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %d, %v; want %d, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// TestResidentBytes_IsWhatProcStatusSays: the raw read of statm gives the
// VmRSS that /proc/PID/status gives (read back to back, within 1 MiB),
// and false for a process that is gone.
func TestResidentBytes_IsWhatProcStatusSays(t *testing.T) {
	pid := os.Getpid()
	raw, ok1 := residentBytes(pid)
	status, ok2 := statusRSS(pid)
	if !ok1 || !ok2 || raw == 0 || max(raw, status)-min(raw, status) > 1<<20 {
		t.Fatalf("statm says %d (%v), status says %d (%v)", raw, ok1, status, ok2)
	}
	if _, ok := residentBytes(1 << 30); ok {
		t.Fatal("a resident size for a pid that cannot exist")
	}
}

// TestResidentBytes_DoesNotWakeTheRuntimesMonitor: reading an executor's
// memory while this process is otherwise idle costs no extra wake-ups of
// its threads, where the same read through package os (the syscall
// state) woke the runtime's sysmon thread each time. Each read follows a
// sleep, as the pool's follow an executor's answer. Measured in a child
// (this test binary, this test alone): sysmon sleeps deeply only while
// every P is idle, which the goroutines other tests leave behind in this
// process need not allow.
func TestResidentBytes_DoesNotWakeTheRuntimesMonitor(t *testing.T) {
	if os.Getenv(rssWakeupsChildEnv) == "1" {
		raw, viaOS := rssReadWakeups(t)
		fmt.Printf("rss-read-wakeups raw %.3f os %.3f\n", raw, viaOS)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestResidentBytes_DoesNotWakeTheRuntimesMonitor$", "-test.count", "1")
	cmd.Env = append(os.Environ(), rssWakeupsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var raw, viaOS float64
	i := bytes.Index(out, []byte("rss-read-wakeups"))
	if _, err := fmt.Sscanf(string(out[max(i, 0):]), "rss-read-wakeups raw %f os %f", &raw, &viaOS); i < 0 || err != nil {
		t.Fatalf("child said no figures (%v):\n%s", err, out)
	}
	t.Logf("wake-ups a read, with the sleep before it: raw %.2f, through package os %.2f", raw, viaOS)
	if raw > viaOS-0.5 {
		t.Fatalf("a raw read costs %.2f wake-ups with its sleep, through package os %.2f: want at least half a wake-up fewer", raw, viaOS)
	}
}

const rssWakeupsChildEnv = "PEERGRID_TEST_RSS_WAKEUPS_CHILD"

// rssReadWakeups is this process's wake-ups per read of its own resident
// memory, raw and through package os, each after a 1 ms sleep, at one P
// (as a worker runs: runtimepolicy).
func rssReadWakeups(t *testing.T) (raw, viaOS float64) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	pid := os.Getpid()
	perRead := func(read func(int) (uint64, bool)) float64 {
		const reads = 200
		before := voluntarySwitches(t)
		for range reads {
			time.Sleep(time.Millisecond) // an idle process, as between answers
			read(pid)
		}
		return float64(voluntarySwitches(t)-before) / reads
	}
	for range 2 { // interleaved: the machine's other work moves both alike
		raw += perRead(residentBytes) / 2
		viaOS += perRead(statusRSS) / 2
	}
	return raw, viaOS
}

// statusRSS is VmRSS read through package os from /proc/PID/status, as
// the pool read it before the raw read of statm (residentBytes).
func statusRSS(pid int) (uint64, bool) {
	return statusField("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")
}
