// Package api is peergrid's HTTP API under /v1/: the JSON types both sides
// speak and a Go client for programs, the CLI and workers.
//
// It must not reach into the ledger or Raft: servers translate these types to
// ledger commands (package scheduler), and workers only ever see the grid
// through this client.
package api
