//go:build linux

package devgrid

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peergrid/peergrid/internal/procstat"
)

// gridUsage is what this process (the dev grid's server and worker) and
// its executor children used, read at one moment: the grid's own CPU
// split into user and system time, its wake-ups (voluntary context
// switches) and the executors' CPU time (from /proc, as they are not
// reaped until the grid closes), and, machine-wide from /proc/stat, the
// CPUs' idle time and their busy time (of every program, this one and its
// executors included).
type gridUsage struct {
	user, sys, executors time.Duration
	wakeups              int64
	idle, busy           time.Duration
}

// others is the CPU time programs other than the grid and its executors
// used.
func (u gridUsage) others() time.Duration { return u.busy - u.user - u.sys - u.executors }

// measureGridUsage is what the grid used while f ran. The executors' CPU
// is read outside this process's own reading: a read of /proc lists every
// process's directory, tens of milliseconds of this process's CPU.
func measureGridUsage(f func()) gridUsage {
	exec := childrenCPU()
	idle, busy := machineCPU()
	before := selfUsage()
	f()
	u := selfUsage().sub(before)
	idle2, busy2 := machineCPU()
	u.idle, u.busy = idle2-idle, busy2-busy
	u.executors = childrenCPU() - exec
	return u
}

func selfUsage() gridUsage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return gridUsage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), wakeups: ru.Nvcsw}
}

func (u gridUsage) sub(v gridUsage) gridUsage {
	return gridUsage{user: u.user - v.user, sys: u.sys - v.sys, executors: u.executors - v.executors, wakeups: u.wakeups - v.wakeups,
		idle: u.idle - v.idle, busy: u.busy - v.busy}
}

// machineCPU is procstat.MachineCPU, zero if /proc/stat cannot be read.
func machineCPU() (idle, busy time.Duration) {
	idle, busy, err := procstat.MachineCPU()
	if err != nil {
		return 0, 0
	}
	return idle, busy
}

// childrenCPU is the CPU time (user + system) of this process's children:
// the live ones (and zombies), from /proc/PID/stat, and those reaped
// (RUSAGE_CHILDREN), so an executor replaced during a run still counts.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + liveChildrenCPU()
}

// liveChildrenCPU sums the CPU time of this process's children not yet
// reaped, from /proc/PID/stat.
func liveChildrenCPU() time.Duration {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum time.Duration
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): ppid is field 4, utime and stime 14 and 15.
		if len(f) < 13 || f[1] != self {
			continue
		}
		utime, _ := strconv.ParseInt(f[14-3], 10, 64)
		stime, _ := strconv.ParseInt(f[15-3], 10, 64)
		sum += time.Duration(utime+stime) * time.Second / 100
	}
	return sum
}
