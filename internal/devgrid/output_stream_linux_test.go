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
// storage peers from there: no executor's peak memory comes near the
// output's size, and the stored result is whole.
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
	id, err := c.Submit(ctx, &tasks.JobSpec{Name: "flood", ModuleHash: storage.Hash(mod), Tasks: 1, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: size})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitJob(ctx, id, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
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
	peak, n := childPeakRSS(t)
	if n == 0 {
		t.Skip("no executor children found in /proc")
	}
	// Held in memory, the output alone would take the executor past its
	// size; spilled, a Go executor peaks at ~25 MiB.
	if peak >= size/2 {
		t.Fatalf("an executor peaked at %d MiB writing a %d MiB stdout: the output was held in memory", peak>>20, size>>20)
	}
	t.Logf("executors' peak RSS %d MiB for a %d MiB stdout", peak>>20, size>>20)
}
