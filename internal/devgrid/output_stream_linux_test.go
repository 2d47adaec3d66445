package devgrid

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// childPeakRSS is the largest peak resident size (VmHWM) of this test
// process's children: the workers' executors.
func childPeakRSS(t *testing.T) (peak int64, n int) {
	t.Helper()
	tasksDirs, _ := filepath.Glob("/proc/self/task/*/children")
	for _, path := range tasksDirs {
		b, _ := os.ReadFile(path)
		for _, pid := range strings.Fields(string(b)) {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", pid))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
					peak, n = max(peak, kb<<10), n+1
				}
			}
		}
	}
	return peak, n
}

// TestGrid_LargeOutputDoesNotGrowTheExecutorsMemory: a task that writes
// 64 MiB to stdout has it spilled to a file as it writes and stored on the
// storage peers from there: no executor's peak memory grows by anything
// near the output's size, and the stored result is whole.
func TestGrid_LargeOutputDoesNotGrowTheExecutorsMemory(t *testing.T) {
	if raceEnabled {
		// The race detector's shadow memory blurs the measure, and the 64 MiB
		// put is slow under it; CI's run without it (CGO_ENABLED=0) checks this.
		t.Skip("measured without the race detector")
	}
	const size = 64 << 20
	g, _, _ := storageGridWith(t, 6, nil)
	c := g.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mod := wasmtest.OutputFlood(1) // writes 'x' until its cap stops it: kind output, its stdout kept
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	flood := func(tasksN int, maxOutput uint64) string {
		id, err := c.Submit(ctx, &tasks.JobSpec{Name: "flood", ModuleHash: storage.Hash(mod), Tasks: tasksN, Timeout: time.Minute,
			Memory: 1 << 20, MaxOutput: maxOutput})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// The baseline: every executor up, the module compiled, a small output.
	flood(4, 1<<10)
	base, n := childPeakRSS(t)
	if n == 0 {
		t.Skip("no executor children found in /proc")
	}
	id := flood(1, size)
	res, err := c.Results(ctx, id)
	if err != nil || res[0].ErrorKind != "output" || res[0].StdoutBlob == "" {
		t.Fatalf("result %+v %v: want an output failure with its stdout stored", res, err)
	}
	if want := storage.Hash(bytes.Repeat([]byte("x"), size)); res[0].StdoutBlob != want {
		t.Fatalf("stored stdout %s, want the hash of %d bytes of x (%s)", res[0].StdoutBlob, size, want)
	}
	var got bytes.Buffer
	if _, err := c.ReadBlob(ctx, res[0].StdoutBlob, &got); err != nil || got.Len() != size {
		t.Fatalf("stored stdout: %d bytes, %v", got.Len(), err)
	}
	peak, _ := childPeakRSS(t)
	// Held in memory, the output alone would take an executor's peak past
	// the baseline by its size; spilled, it stays within a few MiB of it.
	t.Logf("executors' peak RSS %d MiB before, %d MiB after a %d MiB stdout", base>>20, peak>>20, size>>20)
	if peak-base >= size/4 {
		t.Fatalf("an executor's peak grew from %d to %d MiB writing a %d MiB stdout: the output was held in memory", base>>20, peak>>20, size>>20)
	}
}
