package ledger

import "github.com/peergrid/peergrid/tasks"

// Stats are the ledger's numbers for metrics and the dashboard, gathered in
// O(jobs + peers + blobs): tasks are counted from the per-job counters the
// job summaries report, never visited one by one.
type Stats struct {
	Jobs          map[tasks.JobState]int
	Tasks         [4]int // queued, leased, done, failed
	Leases        int
	Peers         map[[2]string]int // {role, state} -> peers; a peer with no role counts under "none"
	WorkerCores   int               // cores of alive workers
	Inline        int
	InlineBytes   int64
	Coded         int
	CodedBytes    int64
	CodedShards   int
	UnplacedBlobs int // coded blobs with a shard placed on no peer
	PinnedBlobs   int
}

// Stats gathers the ledger's numbers.
func (l *Ledger) Stats() Stats {
	st := Stats{Jobs: map[tasks.JobState]int{}, Peers: map[[2]string]int{}}
	for _, j := range l.order {
		st.Jobs[j.state()]++
		st.Tasks[0] += j.nQueued
		st.Tasks[1] += j.nLeased
		st.Tasks[2] += j.nDone
		st.Tasks[3] += j.nFailed
	}
	st.Leases = l.nLeases
	for _, p := range l.peers {
		if len(p.Roles) == 0 {
			st.Peers[[2]string{"none", p.State}]++
		}
		for _, r := range p.Roles {
			st.Peers[[2]string{r, p.State}]++
		}
		if p.IsAliveWorker() {
			st.WorkerCores += p.Cores
		}
	}
	st.Inline = len(l.blobs)
	for _, b := range l.blobs {
		st.InlineBytes += int64(len(b))
	}
	st.Coded = len(l.manifests)
	for _, m := range l.manifests {
		st.CodedBytes += m.Size
		st.CodedShards += len(m.Segments) * (m.K + m.M)
	}
	st.UnplacedBlobs = len(l.byPeer.unplaced)
	for _, m := range l.meta {
		if m.Pinned {
			st.PinnedBlobs++
		}
	}
	return st
}
