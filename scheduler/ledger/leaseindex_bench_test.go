package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkLeaseIndex_80kLeases is the scale benchmark's steady state
// (BenchmarkScale_10kWorkers: 10,000 workers holding 8 leases each) in the
// ledger alone: LeasesOf is finding one worker's leases (what a heartbeat,
// a worker marked down or revoked, and distrust ask), where a pass over
// every lease was what the leader's tick did for the forgotten-lease check
// before the index.
//
//	go test -run '^$' -bench 'LeaseIndex_80kLeases' ./scheduler/ledger/
func BenchmarkLeaseIndex_80kLeases(b *testing.B) {
	const workers, perWorker = 10_000, 8
	f := NewFSM()
	apply := func(c Command) any { return applyOne(b, f, c) }
	apply(&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	spec := tasks.JobSpec{Name: "held", ModuleHash: storage.Hash(testModule), Tasks: workers * perWorker, Timeout: time.Minute,
		Memory: 1 << 20, MaxOutput: 1 << 10}
	if resp := apply(&SubmitJobCommand{ID: "held", Spec: spec, Now: 1}); resp != "held" {
		b.Fatal(resp)
	}
	ids := make([]string, workers)
	for i := range ids {
		ids[i] = fmt.Sprintf("w%05d", i)
		apply(&UpsertPeerCommand{ID: ids[i], Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: 1})
		if g, _ := apply(&LeaseTasksCommand{Worker: ids[i], Max: perWorker, Now: 2, Slack: int64(time.Hour)}).([]Grant); len(g) != perWorker {
			b.Fatalf("%s leased %d", ids[i], len(g))
		}
	}
	b.Run("LeasesOf", func(b *testing.B) {
		n := 0
		for i := 0; b.Loop(); i++ {
			f.View(func(l *Ledger) { n += len(l.LeasesOf(ids[i%workers])) })
		}
		if n != b.N*perWorker {
			b.Fatalf("found %d leases in %d calls", n, b.N)
		}
	})
}
