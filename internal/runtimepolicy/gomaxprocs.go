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
// session"): on 2 cores with both donated, the grid's own CPU per
// CPU-bound task fell from 220-248 to 147-151 µs and its wake-ups from
// 2.9-3.3 to 2.2 a task; the 100k tiny job through the CLI (`peergrid dev
// --cores 2`) and the 1M job's resident memory per finished task stayed
// within issue 15's goals.
//
// A lone server (no executors) keeps Go's default; so does any process
// whose environment sets GOMAXPROCS: the user's choice wins.

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
	if v := getenv("GOMAXPROCS"); v != "" {
		log.Info("GOMAXPROCS as the environment sets it", "gomaxprocs", runtime.GOMAXPROCS(0), "GOMAXPROCS", v, "cpus", cpus, "donated", donated)
		return func() {}
	}
	found := runtime.GOMAXPROCS(WorkerGOMAXPROCS(donated, cpus))
	log.Info("GOMAXPROCS: the CPUs not donated to executors, at least 1", "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", cpus, "donated", donated)
	return func() { runtime.GOMAXPROCS(found) }
}
