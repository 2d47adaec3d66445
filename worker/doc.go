// Package worker is the volunteer daemon: it leases tasks from the grid over
// the HTTP API, runs them in the WebAssembly sandbox's executor pool, and
// reports their results. It heartbeats while alive and, when asked to stop,
// drains: no new leases, running tasks finish within a grace period, and the
// rest are handed back so they requeue at once.
//
// It owns, a file each: leasing with its prefetch and slots (lease.go),
// running a task and turning its outcome into a report (run.go, with
// module.go, inputs.go and stdout.go), running tiny tasks of one module
// in batches on one executor (batch.go), sending reports (report.go: on the
// next lease call when one is waiting to be made, else alone), the
// leases held and attempts running (held.go), heartbeats (heartbeat.go),
// the drain (drain.go), and, when it is a storage peer, the shard service
// that obeys only capabilities the grid signed and certificates of the grid
// (shardauth.go), repair orders and the orphan sweep (storagepeer.go,
// sweep.go), and its
// volunteer's say (volunteer.go: the preferences of worker/prefs applied
// through a gate on leasing and starting tasks (gate.go), the executor
// pool's pause, resume and CPU limit (Pauser), max_memory (membudget.go),
// max_disk (disk.go), a hand back after pause_keep, today's totals
// (totals.go) and the control socket of worker/control (controlsock.go)).
//
// A task's input inline in its assignment is given to the task as bytes; an
// erasure-coded one is streamed from the storage peers into a file under
// DataDir/inputs, hash checked, given to the task as its stdin file and
// removed after the attempt, so a large input costs disk, not memory. A
// stdout over the cluster's inline threshold likewise spills to a file
// under DataDir/outputs as the task writes it (wasm.Request.StdoutPath) and
// is put on the storage peers from the file.
//
// It must reach the ledger only through the grid's API (the gridAPI
// interface, which the api client implements), never through Raft or any
// scheduler package: a worker on a volunteer's machine is just a client of
// the grid.
package worker
