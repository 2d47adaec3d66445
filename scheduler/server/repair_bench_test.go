package server

// Benchmarks of the leader's repair planning on a large ledger: 100k
// erasure-coded blobs of 1-3 segments (k=4, m=2) over 50 storage peers,
// built through Apply as Raft would (ledgertest.BenchLedger).
//
//	go test -run '^$' -bench BenchmarkRepairPlan -benchmem ./scheduler/server/
//
// The leader plans repairs every WorkerTTL/5 (3 s by default) while holding
// the ledger's read lock, which every Apply waits for; the steady state (no
// peer down) is what it costs on every tick. The ledger's own scans are
// benchmarked in scheduler/ledger (BenchmarkGarbageScan).

import (
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/ledger/ledgertest"
)

// BenchmarkRepairPlan measures the read-locked part of repair planning
// (needs) and a whole plan call, with every peer alive and with one peer
// down past the repair grace.
func BenchmarkRepairPlan(b *testing.B) {
	f := ledgertest.BenchLedger(b, 50, 100_000)
	rp := newRepairPlanner(30*time.Second, 5*time.Minute)
	now := time.Unix(0, 10).Add(time.Hour)
	run := func(b *testing.B, wantNeeds bool) {
		b.Run("needs", func(b *testing.B) {
			var needs []repairNeed
			for b.Loop() {
				if needs, _ = rp.needs(f, now); (len(needs) > 0) != wantNeeds {
					b.Fatalf("%d blobs need repair", len(needs))
				}
			}
			b.ReportMetric(float64(len(needs)), "blobs/op")
		})
		b.Run("plan", func(b *testing.B) {
			for b.Loop() {
				rp.plan(f, now)
			}
		})
	}
	b.Run("steady", func(b *testing.B) { run(b, false) })
	b.Run("peer-down", func(b *testing.B) {
		down := storagetest.PeerID(7)
		ledgertest.Apply(b, f, &ledger.UpsertPeerCommand{ID: down, State: api.PeerDown, Now: 20})
		defer ledgertest.Apply(b, f, &ledger.UpsertPeerCommand{ID: down, State: api.PeerAlive, Now: 30})
		run(b, true)
	})
}
