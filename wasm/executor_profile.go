package wasm

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"
)

// ExecutorProfileEnv names a directory: an executor child started with it
// in its environment (a pool's children inherit the worker's) writes CPU
// profiles of itself there, one file per executorProfileWindow,
// executor-PID-N.prof. A pool kills its children when it closes, so a
// profile written once at exit would be lost; in windows at most the last
// few seconds are. Read them all at once with the binary that ran them:
//
//	go tool pprof -top peergrid DIR/executor-*.prof
const ExecutorProfileEnv = "PEERGRID_EXECUTOR_CPUPROFILE"

// executorProfileWindow is how much each profile file covers.
const executorProfileWindow = 2 * time.Second

// startExecutorProfile starts profiling this executor into dir (nothing if
// dir is ""); the returned stop writes the last window.
func startExecutorProfile(dir string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "peergrid executor: cpu profile:", err)
		return func() {}
	}
	p := &executorProfile{dir: dir, pid: os.Getpid(), done: make(chan struct{}), stopped: make(chan struct{})}
	if !p.next() {
		return func() {}
	}
	go p.rotate()
	return func() { close(p.done); <-p.stopped }
}

type executorProfile struct {
	dir     string
	pid     int
	n       int
	file    *os.File
	done    chan struct{} // closed by stop
	stopped chan struct{} // closed once the last window is written
}

// rotate ends a window and starts the next every executorProfileWindow.
func (p *executorProfile) rotate() {
	defer close(p.stopped)
	t := time.NewTicker(executorProfileWindow)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.end()
			if !p.next() {
				return
			}
		case <-p.done:
			p.end()
			return
		}
	}
}

// next starts a window in a new file; false if it cannot.
func (p *executorProfile) next() bool {
	p.n++
	f, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("executor-%d-%d.prof", p.pid, p.n)))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peergrid executor: cpu profile:", err)
		return false
	}
	p.file = f
	return true
}

func (p *executorProfile) end() {
	pprof.StopCPUProfile()
	_ = p.file.Close()
}
