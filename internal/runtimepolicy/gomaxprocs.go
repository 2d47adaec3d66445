package runtimepolicy

import (
	"log/slog"
	"runtime"
)

// The number of Ps of a worker's process (`peergrid agent --worker`,
// `peergrid dev`), issue 15.
//
// A worker donates CPUs to its executors, child processes that run tasks
// at the lowest CPU priority. Go's default gives the worker's own process
// a P per CPU all the same, and the runtime wakes an idle P's spinning
// thread whenever a goroutine becomes runnable: each executor answer, each
// report and lease, each Raft commit in a dev grid wakes a second thread
// besides the one that runs the goroutine, and hands work between them.
// On a machine whose every CPU runs an executor, each such wake-up
// preempts an executor, and a context switch is dear (10-20 µs on the
// 2-vCPU PVM guest measured here). With one P per CPU left to the process
// itself (at least 1), a goroutine made runnable waits for the P of the
// thread already awake instead.
//
// Measured (BENCHMARKS.md, "Issue 15: the grid's own CPU per task, fourth
// session"; 2 vCPUs, both donated, load 2.6-7, interleaved with Go's
// default): the grid's wake-ups per CPU-bound task fell from 2.95 to 2.20
// (medians of 12 rounds each, lower in every pair) and its CPU per task
// from 180 to 150 µs; the 100k tiny job through the CLI ran 20,608
// tasks/s against 19,777 (medians of 7) with 22.6 against 28.7 µs of the
// dev process's CPU a task, and the 1M job kept 198.6 bytes of RSS a
// finished task (196.4 before). So even where the dev process itself is
// busy (tiny tasks), one P served as well as two; a second P bought
// mostly the spinning and the hand-offs. Not measured: a many-core
// machine donating every CPU to tasks under a millisecond.
//
// A lone server (no executors) follows its load instead (server.go);
// any process whose environment sets GOMAXPROCS keeps it: the user's
// choice wins.

// WorkerGOMAXPROCS is the number of Ps for a process on cpus CPUs whose
// worker donates donated of them to executors: the CPUs left, at least 1.
func WorkerGOMAXPROCS(donated, cpus int) int {
	return max(cpus-donated, 1)
}

// ApplyWorkerGOMAXPROCS sets this process's GOMAXPROCS by
// WorkerGOMAXPROCS for a worker of donated cores (0: all the CPUs, a
// worker's default), unless getenv has GOMAXPROCS, and logs what is in
// force either way. It returns what puts back the GOMAXPROCS it found
// (for a process that runs a worker only for a while: tests, benchmarks).
func ApplyWorkerGOMAXPROCS(getenv func(string) string, donated int, log *slog.Logger) (restore func()) {
	cpus := runtime.NumCPU()
	if donated <= 0 {
		donated = cpus
	}
	if usersGOMAXPROCS(getenv, log, "cpus", cpus, "donated", donated) {
		return func() {}
	}
	found := runtime.GOMAXPROCS(WorkerGOMAXPROCS(donated, cpus))
	log.Info("GOMAXPROCS: the CPUs not donated to executors, at least 1", "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", cpus, "donated", donated)
	return func() { runtime.GOMAXPROCS(found) }
}

// usersGOMAXPROCS reports whether getenv has GOMAXPROCS, the user's choice,
// which every rule here leaves in force; if so it logs it, with attrs.
func usersGOMAXPROCS(getenv func(string) string, log *slog.Logger, attrs ...any) bool {
	v := getenv("GOMAXPROCS")
	if v != "" {
		log.Info("GOMAXPROCS as the environment sets it", append([]any{"gomaxprocs", runtime.GOMAXPROCS(0), "GOMAXPROCS", v}, attrs...)...)
	}
	return v != ""
}
