// Package storage owns blobs: content addressing (a blob is named by the
// SHA-256 of its bytes) and the limits of keeping a blob inline in the ledger.
//
// Erasure coding across peers, shard stores and repair will live here too. It
// must not know the ledger or Raft: the leader plans, storage moves bytes.
package storage
