// Package store owns Raft and the ledger's FSM on a server: the Raft log and
// stable store (raft-boltdb), snapshots on disk, the TCP transport, and the
// proposer that batches concurrent commands into one Raft entry.
//
// Propose is the one way to change the ledger, and it takes a
// ledger.Command, so a command's type byte always matches its payload. The
// store knows nothing of HTTP: the server (scheduler/server) translates
// requests into commands and forwards a follower's requests to the leader.
package store
