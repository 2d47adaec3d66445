// Package api is the contract of peergrid's HTTP API under /v1/: the JSON
// types servers, clients and workers speak, the headers, and the limits both
// sides enforce. The Go client that speaks it is package api/client.
//
// It must not reach into the ledger or Raft (servers translate these types
// to ledger commands in scheduler/server), do I/O, or hold client logic.
package api
