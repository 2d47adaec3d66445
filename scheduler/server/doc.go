// Package server is a ledger server: the HTTP API under /v1/ and the
// leader's loops. It owns
//   - the handlers (http*.go), which check a request, translate it into one
//     ledger command (a lease carrying reports: the reports', then the
//     lease's) and propose it through the store, or answer a read from the
//     ledger's read side under FSM.View;
//   - forwarding (forward.go): a follower proxies writes and consistent
//     reads to the leader's HTTP API;
//   - forgotten leases (forgotten.go): each heartbeat hands back its
//     worker's leases granted a TTL before it that its held list lacks,
//     found through the ledger's per-worker lease index, never a pass over
//     every lease;
//   - worker streams (stream.go): the leader serves a worker's
//     heartbeats, leases and reports as frames (package api/stream) on one
//     upgraded connection, through the same functions as their routes,
//     authenticating every message again; a follower refuses them; its
//     reader serves frames from the netpoller's RawConn callback, one read
//     system call a frame (streamread.go; StreamListener under TLS);
//   - the leader's loops (server.go, repair.go): worker liveness kept in
//     memory, lease expiry, peers marked down, repair planning, garbage
//     collection of blobs and their shards; a repair's commit is accepted
//     only from the worker holding the order, onto its targets, once each
//     new holder proves by content that it holds its shard (http_blobs.go);
//     the shard audit (audit.go) challenges a sample of stored shards each
//     round and has those whose holder answers wrongly rebuilt;
//   - group formation (cluster.go): join, bootstrap-expect, operator
//     commands;
//   - the command gate (commandgate.go): the leader proposes the ledger's
//     compact command shapes only while every server says it applies them;
//   - /metrics (metrics.go): the views' collectors, the leader's own
//     counters and latencies, and Raft's go-metrics;
//   - the grid's engine per module (engines.go): the leader folds the
//     workers' reported run times into a wasm.EngineChooser (its rules,
//     run as a learner) and commits only the choice.
//
// It must not change the ledger except by proposing a command, keep
// replicated state of its own (liveness and repair orders are the leader's
// memory; only their outcomes are committed), or reach into Raft beyond the
// store's API.
package server
