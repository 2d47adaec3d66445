//go:build linux

package main

// What a user meets, measured as a user runs it (issue 15): `peergrid dev`
// in its own process, and `peergrid job submit --wait` of the tiny example
// with N tasks.
//
//	go test -run '^$' -bench CLI_TinyJob -benchtime 1x ./cmd/peergrid/
//	PEERGRID_CLI_TASKS=1000000 go test -run '^$' -bench CLI_TinyJob -benchtime 1x -timeout 30m ./cmd/peergrid/
//
// tasks/s is from the submit command's start to its exit (upload, submit,
// run, wait). rss-B/task is what the dev process's resident memory grew by
// over the job, read from /proc/PID/status after the submit command
// returned, over the tasks (the goal is at most 250 bytes); peak-rss-MB is
// its high-water mark. dev-cpu-us/task is the dev process's CPU (user and
// system, /proc/PID/stat) over the job, over the tasks: the grid's own
// work, the executors (child processes) apart. The dev process runs the
// server, the worker (2 cores) and the storage peers, as `peergrid dev`
// does for a user; GOGC or GOMEMLIMIT in the environment reach it.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/proctest"
)

func BenchmarkCLI_TinyJob(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PEERGRID_CLI_TASKS")); err == nil && v > 0 {
		n = v
	}
	bin := proctest.Binary(b)
	module, err := filepath.Abs(filepath.Join("..", "..", "examples", "tiny", "tiny.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	var elapsed, cpu time.Duration
	var grown, peak int64
	for i := range b.N {
		dev, env := startDevProcess(b, bin)
		job := filepath.Join(b.TempDir(), "job.toml")
		writeTinyJob(b, job, module, n, i)
		before := procStatusKB(b, dev.Process.Pid, "VmRSS")
		cpuBefore := procCPU(b, dev.Process.Pid)
		start := time.Now()
		submit := exec.Command(bin, "job", "submit", job, "--wait")
		submit.Env = append(os.Environ(), env...)
		if out, err := submit.CombinedOutput(); err != nil {
			b.Fatalf("job submit: %v\n%s", err, out)
		}
		elapsed += time.Since(start)
		cpu += procCPU(b, dev.Process.Pid) - cpuBefore
		grown += (procStatusKB(b, dev.Process.Pid, "VmRSS") - before) << 10
		peak = max(peak, procStatusKB(b, dev.Process.Pid, "VmHWM")<<10)
		stopDevProcess(b, dev)
	}
	total := float64(n * b.N)
	b.ReportMetric(total/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(grown)/total, "rss-B/task")
	b.ReportMetric(float64(peak)/(1<<20), "peak-rss-MB")
	b.ReportMetric(float64(cpu.Microseconds())/total, "dev-cpu-us/task")
	b.ReportMetric(0, "ns/op")
}

// startDevProcess runs `peergrid dev` on free ports and returns it with the
// environment its first lines give a user.
func startDevProcess(b *testing.B, bin string) (*exec.Cmd, []string) {
	b.Helper()
	dev := exec.Command(bin, "dev", "--data-dir", b.TempDir(), "--bind", "127.0.0.1:0", "--cores", "2", "--log-level", "warn")
	out, err := dev.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	dev.Stderr = nil // its banner; the PEERGRID_ lines are on stdout
	if err := dev.Start(); err != nil {
		b.Fatal(err)
	}
	var env []string
	lines := bufio.NewScanner(out)
	for len(env) < 3 && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "PEERGRID_") {
			env = append(env, lines.Text())
		}
	}
	if len(env) < 3 {
		dev.Process.Kill()
		b.Fatalf("peergrid dev printed %d of its 3 PEERGRID_ lines: %v", len(env), lines.Err())
	}
	return dev, env
}

func stopDevProcess(b *testing.B, dev *exec.Cmd) {
	b.Helper()
	_ = dev.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		dev.Process.Kill()
		<-done
	}
}

// writeTinyJob writes the tiny example's job with n tasks; cache = false
// and a name per iteration so every run runs every task.
func writeTinyJob(b *testing.B, path, module string, n, i int) {
	b.Helper()
	job := fmt.Sprintf("name = \"tiny-%d\"\nmodule = %q\nargs = [\"{index}\"]\ntasks = %d\ntimeout = \"10s\"\nmemory = \"1MiB\"\nmax_output = \"1KiB\"\ncache = false\n", i, module, n)
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		b.Fatal(err)
	}
}

// procCPU is the user and system CPU a process used so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from its ")".
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15 of the line
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %q: %v", pid, f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// procStatusKB reads one "Name: N kB" line of /proc/PID/status.
func procStatusKB(b *testing.B, pid int, name string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("%s: %q: %v", name, line, err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}
