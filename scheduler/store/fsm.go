package store

import (
	"bufio"
	"io"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// raftFSM adapts the ledger's FSM to raft.FSM: it hands Apply each command
// entry's bytes and streams snapshots into Raft's sinks.
type raftFSM struct{ f *ledger.FSM }

var _ raft.FSM = raftFSM{}

// Apply implements raft.FSM. Entries that are not commands (configuration
// changes, barriers, no-ops) do not touch the ledger.
func (r raftFSM) Apply(log *raft.Log) any {
	if log.Type != raft.LogCommand {
		return nil
	}
	return r.f.Apply(log.Data)
}

// Snapshot implements raft.FSM. Raft calls it between Applies.
func (r raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	return raftSnapshot{r.f.Snapshot()}, nil
}

// Restore implements raft.FSM.
func (r raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return r.f.Restore(rc)
}

type raftSnapshot struct{ snap *ledger.Snapshot }

// Persist implements raft.FSMSnapshot: it streams the snapshot into the
// sink, cancelling it on any error.
func (r raftSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	if err := r.snap.Write(w); err != nil {
		sink.Cancel()
		return err
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (raftSnapshot) Release() {}
