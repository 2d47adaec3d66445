// Package ledger is the replicated work ledger: jobs, tasks, leases,
// results, peers and blob manifests, and the commands that change them.
//
// It owns:
//   - the commands (commands.go): small typed records, append-only type
//     bytes, one Go type per command (Command.Type ties them), encoded by
//     Encode and batched by EncodeBatch; leases and completions also have
//     a compact binary shape (codec.go, EncodeCompact) that a leader
//     proposes only when every server applies it;
//   - Apply (FSM, ledger.go): one short applyX per command, a pure function
//     of (state, command);
//   - snapshots (snapshot.go): a stream of typed records written while
//     Apply goes on (task chunks are shared copy-on-write) and read back
//     record by record;
//   - the compact task record (taskrecord.go): 80 bytes a task, read and
//     changed through accessors, its rare fields behind one pointer, its
//     inline stdout in its chunk's byte arena (tasktable.go);
//     snapshots and StateHash see it as the JSON taskRecord it always was;
//   - the ledger's own rules, which no proposer can talk a server out of:
//     a committed blob manifest is write-once (manifests.go: only a
//     repair's moves the leader named, same shard hashes and proof roots,
//     may change it);
//   - the derived indexes (shard, blob, reference and result-cache
//     indexes, and the live leases by worker, leaseindex.go), kept exact
//     by Apply and rebuilt on restore, never serialized;
//   - quotas (quotas.go): each credential's, enforced as submits and puts
//     apply, with the use derived from the jobs and the blob meta;
//   - the result cache (cache.go): a submit takes the results of done
//     tasks of the same owner with the same content (tasks.ContentHash),
//     indexed by 16-byte items in sorted buckets (cacheindex.go) derived
//     from the done tasks like the other indexes;
//   - replicas and a quorum (replicas.go): per-replica leases, votes
//     by result hash, no_quorum, the workers' reputation and distrust,
//     adaptive replication from the leader's random draw;
//   - compaction (compact.go): maps that shrank are copied into smaller
//     ones, so a purge gives memory back;
//   - the read side (views.go, stats.go) that handlers, loops and views
//     call under FSM.View.
//
// It must not read a clock, a random source, the network or the disk
// beyond the snapshot stream it is handed: the leader stamps times, ids and
// choices into commands, so the same log gives the same ledger on every
// server. It knows nothing of Raft (scheduler/store adapts the FSM to
// raft.FSM) or of HTTP (scheduler/server translates requests into
// commands). internal/archtest checks the imports.
package ledger
