package wasm

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// The child reads its stopped time from the shared file through its
// mapping, as the parent publishes it.
func TestStopClock_ChildReadsWhatTheParentPublishes(t *testing.T) {
	parent := newStopClock()
	if parent.file == nil {
		t.Skip("no stop clock file here")
	}
	defer parent.close()
	child := childStopClock{file: parent.file, mem: mapStopClock(parent.file)}
	if runtime.GOOS != "windows" && child.mem == nil {
		t.Fatal("the stop clock file was not mapped")
	}
	start := time.Now()
	parent.markStopped(start)
	parent.markRunning(start.Add(1234 * time.Millisecond))
	if got := child.stoppedFor(); got != 1234*time.Millisecond {
		t.Fatalf("child reads %v, want 1.234s", got)
	}
}

// PEERGRID_EXECUTOR_CPUPROFILE makes every executor write CPU profiles.
func TestPool_ExecutorWritesCPUProfilesWhenAsked(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(ExecutorProfileEnv, dir)
	mod := put(t, wasmtest.Hello("hi\n", "", 0))
	p := newPool(t, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := p.Run(testCtx(t), &Request{ModuleHash: mod}); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "executor-*-1.prof"))
		if len(files) == 1 {
			if b, err := os.ReadFile(files[0]); err == nil && len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
				return // a gzipped profile: the first window is written
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no profile written in %s after 30 s: %v", dir, files)
		}
	}
}
