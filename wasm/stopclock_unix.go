//go:build unix

package wasm

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapStopClock maps the first bytes of the stop clock file shared with the
// parent, so the child reads its stopped time from memory: it reads it
// several times a task (each deadline timer, the run's duration), and a
// pread each time cost a tenth of a tiny task. The parent's writes reach
// the mapping through the page cache. nil if it cannot be mapped.
func mapStopClock(f *os.File) []byte {
	mem, err := unix.Mmap(int(f.Fd()), 0, 8, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return mem
}
