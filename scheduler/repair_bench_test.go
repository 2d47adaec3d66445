package scheduler

// Benchmarks of the leader's repair planning and garbage scan on a large
// ledger: 100k erasure-coded blobs of 1-3 segments (k=4, m=2) over 50
// storage peers, built through Apply as Raft would.
//
//	go test -run '^$' -bench 'BenchmarkRepairPlan|BenchmarkGarbageScan' -benchmem ./scheduler/
//
// The leader plans repairs every WorkerTTL/5 (3 s by default) while holding
// the ledger's read lock, which every Apply waits for; the steady state (no
// peer down) is what it costs on every tick.

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

const (
	benchBlobs = 100_000
	benchPeers = 50
)

var (
	benchLedgerOnce sync.Once
	benchLedgerFSM  *FSM
	benchLedgerIdx  uint64
)

// fsmApply applies one encoded command to f at the next log index.
func fsmApply(tb testing.TB, f *FSM, index *uint64, t CommandType, payload any) any {
	tb.Helper()
	data, err := encodeCommand(t, payload)
	if err != nil {
		tb.Fatal(err)
	}
	*index++
	return f.Apply(&raft.Log{Index: *index, Type: raft.LogCommand, Data: data})
}

func benchPeerID(i int) string { return fmt.Sprintf("peer-%02d", i) }

// randomManifest is a valid manifest of 1-3 segments (k=4, m=2) whose
// shards sit on distinct peers of 0..peers-1; with unplaced > 0, that many
// shards of its first segment are left unplaced. Shard hashes are unique.
func randomManifest(r *rand.Rand, n, peers, unplaced int) *storage.Manifest {
	const k, m, segSize = 4, 2, 1 << 20
	segs := 1 + r.IntN(3)
	man := &storage.Manifest{Version: storage.ManifestVersion, Hash: fmt.Sprintf("%064x", n), K: k, M: m,
		SegmentSize: segSize, Size: int64(segs-1)*segSize + 100}
	for s := range segs {
		start := r.IntN(peers)
		shards := make([]storage.Shard, k+m)
		for i := range shards {
			shards[i] = storage.Shard{Hash: fmt.Sprintf("%032x%032x", n+1, s*(k+m)+i+1), Peer: benchPeerID((start + i) % peers)}
		}
		if s == 0 {
			for i := range min(unplaced, m) {
				shards[k+i].Peer = ""
			}
		}
		man.Segments = append(man.Segments, storage.Segment{Hash: storage.SegmentHash(k, man.SegmentLen(s), shards), Shards: shards})
	}
	return man
}

// benchLedger builds the shared large ledger once: the storage peers, alive,
// and benchBlobs manifests, put at time 10.
func benchLedger(tb testing.TB) (*FSM, *uint64) {
	benchLedgerOnce.Do(func() {
		f := NewFSM()
		for i := range benchPeers {
			fsmApply(tb, f, &benchLedgerIdx, cmdUpsertPeer, &UpsertPeerCommand{ID: benchPeerID(i), Roles: []string{api.RoleStorage},
				StorageAddress: fmt.Sprintf("10.0.0.%d:7000", i), State: api.PeerAlive, Now: 1})
		}
		r := rand.New(rand.NewPCG(1, 2))
		for n := range benchBlobs {
			man := randomManifest(r, n, benchPeers, 0)
			if resp := fsmApply(tb, f, &benchLedgerIdx, cmdPutManifest, &PutManifestCommand{Manifest: man, Now: 10}); resp != nil {
				tb.Fatalf("put manifest: %v", resp)
			}
		}
		benchLedgerFSM = f
	})
	if benchLedgerFSM == nil {
		tb.Fatal("building the benchmark ledger failed")
	}
	return benchLedgerFSM, &benchLedgerIdx
}

// plannerOn is a Server with just what planRepairs uses, over f.
func plannerOn(f *FSM) *Server {
	cfg := ServerConfig{WorkerTTL: 15 * time.Second, Logger: benchLog}
	cfg.setDefaults()
	return &Server{cfg: cfg, store: &Store{fsm: f}, log: benchLog, repairs: newRepairPlanner()}
}

// BenchmarkRepairPlan measures the read-locked part of repair planning
// (repairNeeds) and a whole planRepairs call, with every peer alive and
// with one peer down past the repair grace.
func BenchmarkRepairPlan(b *testing.B) {
	f, idx := benchLedger(b)
	s := plannerOn(f)
	now := time.Unix(0, 10).Add(time.Hour)
	run := func(b *testing.B, wantNeeds bool) {
		b.Run("needs", func(b *testing.B) {
			var needs []repairNeed
			for b.Loop() {
				if needs, _ = s.repairNeeds(now); (len(needs) > 0) != wantNeeds {
					b.Fatalf("%d blobs need repair", len(needs))
				}
			}
			b.ReportMetric(float64(len(needs)), "blobs/op")
		})
		b.Run("plan", func(b *testing.B) {
			for b.Loop() {
				s.planRepairs(now)
			}
		})
	}
	b.Run("steady", func(b *testing.B) { run(b, false) })
	b.Run("peer-down", func(b *testing.B) {
		down := benchPeerID(7)
		fsmApply(b, f, idx, cmdUpsertPeer, &UpsertPeerCommand{ID: down, State: api.PeerDown, Now: 20})
		defer fsmApply(b, f, idx, cmdUpsertPeer, &UpsertPeerCommand{ID: down, State: api.PeerAlive, Now: 30})
		run(b, true)
	})
}

// BenchmarkGarbageScan measures the garbage collector's read of the ledger
// when nothing is old enough to collect (its common case).
func BenchmarkGarbageScan(b *testing.B) {
	f, _ := benchLedger(b)
	for b.Loop() {
		f.View(func(l *Ledger) {
			if g := l.garbage(5); len(g) != 0 {
				b.Fatalf("garbage %d", len(g))
			}
		})
	}
}

// BenchmarkIndexMemory reports what the derived shard and blob indexes cost
// in heap per blob, built afresh from the benchmark ledger's manifests.
func BenchmarkIndexMemory(b *testing.B) {
	f, _ := benchLedger(b)
	var manifests []*storage.Manifest
	f.View(func(l *Ledger) {
		for _, m := range l.manifests {
			manifests = append(manifests, m)
		}
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		before := heap()
		shards := shardIndex{}
		for _, m := range manifests {
			shards.add(m, +1)
		}
		mid := heap()
		blobs := newBlobIndex()
		for _, m := range manifests {
			blobs.add(m)
		}
		after := heap()
		b.ReportMetric(float64(mid-before)/float64(len(manifests)), "shard_index_B/blob")
		b.ReportMetric(float64(after-mid)/float64(len(manifests)), "blob_index_B/blob")
		runtime.KeepAlive(shards)
		runtime.KeepAlive(blobs)
	}
}
