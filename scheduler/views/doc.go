// Package views renders a server's state for people and monitoring: the
// read-only web dashboard under /ui/ (dashboard.go, templates in
// dashboard/) and the Prometheus collectors of the server's Raft state and
// applied ledger (metrics.go).
//
// It reads only: the ledger through FSM.View and its read-side methods, Raft
// through the store, and what the server offers through Source (peers, the
// Raft group's servers, credentials). It never proposes a command, never
// reaches into the server's or the ledger's private state, and never
// forwards to the leader: every server renders its own applied copy. Its
// only state of its own is the dashboard's sign-in sessions and sign-in
// rate limiter (sessions.go, guard.go) and an hour of throughput samples
// of its applied ledger for the live charts (live.go), all kept in this
// server's memory and never replicated. Besides the ledger it reads what
// its server's heartbeats said (Source.ReportedRunning) and, for an image
// job's tiles, blobs from the storage peers (image.go).
package views
