// Package scheduler is the home of the grid's servers; its layers are the
// packages below it, each depending only on the ones listed after it:
//
//   - server: the HTTP API and the leader's loops (lease expiry, dead
//     peers, repair planning, garbage collection), forwarding to the leader,
//     group formation;
//   - views: the web dashboard and the Prometheus collectors, read-only;
//   - store: Raft, the proposer that batches commands, snapshots on disk;
//   - ledger: the replicated state and its commands, a pure function of the
//     log, with no clock, network, disk, Raft or HTTP.
//
// Compare Nomad's nomad/ (endpoints) and nomad/state/ (replicated state),
// and rqlite's http/ and store/.
package scheduler
