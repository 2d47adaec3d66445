// Package client is the Go client of a peergrid grid's HTTP API (/v1/),
// the one the CLI uses: submit a job file (its module and inputs uploaded as
// blobs, large ones erasure-coded by the client straight onto the storage
// peers), follow it, and download its results; workers lease, report and
// heartbeat through it too.
//
// Given several servers, a Client talks to one and fails over to another
// when it cannot be reached or answers that nothing was applied: any server
// forwards to the leader, so a program never needs to know which one leads.
//
// A worker's client (WorkerStream) sends its heartbeats, leases and
// reports over one stream to the leader when a server offers one, and as
// requests otherwise (stream.go).
//
// The wire types are in package api; this package owns the requests,
// failover, the client's side of erasure coding and file handling.
package client
