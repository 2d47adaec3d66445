// Package storage owns blobs and their bytes: content addressing (a blob is
// named by the SHA-256 of its bytes), the limits of keeping a blob inline in
// the ledger, and, for larger blobs, erasure coding across storage peers.
//
// What it owns:
//
//   - Manifest: how a blob is cut into segments, each segment coded into K
//     data + M parity shards (klauspost/reedsolomon), and which peer holds
//     each shard. EncodeManifest / DecodeManifest are the versioned encoding
//     the ledger commits; the decoder validates every field. Shards are named
//     by the SHA-256 of their bytes, like blobs; a segment (manifest version
//     2) by SegmentHash, a hash over its length and its shard hashes, since
//     verified shards and the blob hash already cover its bytes.
//     Each shard also carries a proof root (ProofRoot: a Merkle tree over
//     its 4 KiB chunks) so a holder can prove it has the shard without
//     sending it. SameContent and Moved say how two manifests of one blob
//     differ: the ledger keeps a committed manifest write-once and lets only
//     a repair move shards.
//   - Proofs of possession (proof.go, shardproof.go): CheckHolder challenges
//     a holder for one random chunk and its Merkle path and checks them
//     against the manifest's root, or fetches and hashes the whole shard
//     when there is no root. Health (blob stat, the dashboard) and the
//     leader's acceptance of a repair rely on it; HEAD is never proof.
//   - ShardStore: a content-addressed shard directory on a peer's disk,
//     written atomically (temp file, fsync, rename) and checked against the
//     hash on write and on read; a corrupt shard is quarantined and reported.
//     It holds at most its quota of bytes (MaxBytes) and refuses a shard
//     that would pass it before writing it (ErrStoreFull, HTTP 507).
//   - NewShardHandler / ShardClient: the HTTP shard service under
//     /v1/shards/{hash} that peers speak to each other. Who may do what is
//     the Authorizer's to say (the worker's obeys capabilities the grid
//     signed, sent in CapabilityHeader); storage only carries them.
//   - Put, Get and Repair: stream a blob in segment by segment to distinct
//     peers, read it back from any K verified shards of each segment
//     (hedging slow peers), and rebuild lost shards onto new peers. Memory is
//     bounded by a few segments whatever the blob's size. The blob's SHA-256,
//     one sequential pass, is the floor of both: Put computes it on its own
//     goroutine while segments are coded and uploaded, and Get checks it at
//     the end (see BENCHMARKS.md).
//
// What it must not do: know the ledger, Raft, jobs or the scheduler. The
// leader plans (which peers are live, which shards are lost, where repairs
// go, when a shard is garbage) and commits manifests; storage only moves and
// checks bytes as it is told, on the peers, so bulk data never goes through
// the leader. It must not import package api (api imports storage).
package storage
