package ledger

// Benchmarks of the ledger's derived indexes on a large ledger: 100k
// erasure-coded blobs of 1-3 segments (k=4, m=2) over 50 storage peers,
// built through Apply as Raft would.
//
//	go test -run '^$' -bench 'BenchmarkGarbageScan|BenchmarkIndexMemory' -benchmem ./scheduler/ledger/
//
// The leader's repair planning over the same ledger is benchmarked in
// scheduler/server (BenchmarkRepairPlan).

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
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

// fsmApply applies one encoded command to f; index counts the commands.
func fsmApply(tb testing.TB, f *FSM, index *uint64, c Command) any {
	tb.Helper()
	data, err := Encode(c)
	if err != nil {
		tb.Fatal(err)
	}
	*index++
	return f.Apply(data)
}

// benchLedger builds the shared large ledger once: the storage peers,
// alive, and benchBlobs manifests, put at time 10 (as
// ledgertest.BenchLedger, which this package's tests cannot import).
func benchLedger(tb testing.TB) (*FSM, *uint64) {
	benchLedgerOnce.Do(func() {
		f := NewFSM()
		for i := range benchPeers {
			fsmApply(tb, f, &benchLedgerIdx, &UpsertPeerCommand{ID: storagetest.PeerID(i), Roles: []string{api.RoleStorage},
				StorageAddress: fmt.Sprintf("10.0.0.%d:7000", i), State: api.PeerAlive, Now: 1})
		}
		r := rand.New(rand.NewPCG(1, 2))
		for n := range benchBlobs {
			man := storagetest.RandomManifest(r, n, benchPeers, 0)
			if resp := fsmApply(tb, f, &benchLedgerIdx, &PutManifestCommand{Manifest: man, Now: 10}); resp != nil {
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

// BenchmarkGarbageScan measures the garbage collector's read of the ledger
// when nothing is old enough to collect (its common case).
func BenchmarkGarbageScan(b *testing.B) {
	f, _ := benchLedger(b)
	for b.Loop() {
		f.View(func(l *Ledger) {
			if g := l.Garbage(5); len(g) != 0 {
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
