package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

// MachineCPU is the time all CPUs spent idle (idle, iowait) and busy
// (user, nice, system, irq, softirq, steal) so far, from /proc/stat's
// "cpu" line.
func MachineCPU() (idle, busy time.Duration, err error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 {
		return 0, 0, fmt.Errorf("/proc/stat: %q: fewer than 8 CPU times", line)
	}
	ticks := func(fields ...int) (time.Duration, error) {
		var sum uint64
		for _, i := range fields {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
			}
			sum += v
		}
		return time.Duration(sum) * time.Second / userHZ, nil
	}
	if idle, err = ticks(4, 5); err != nil {
		return 0, 0, err
	}
	busy, err = ticks(1, 2, 3, 6, 7, 8)
	return idle, busy, err
}
