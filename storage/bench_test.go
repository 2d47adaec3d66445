package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/storage"
)

const benchBlob = 64 << 20

var rawRS struct {
	once sync.Once
	mbps float64
}

// rawRSThroughput measures reedsolomon encoding alone (k=4, m=2, 4 MiB
// segments) in MB/s of blob bytes, once per run, as the yardstick for the
// storage layer's throughput.
func rawRSThroughput(b *testing.B) float64 {
	rawRS.once.Do(func() {
		enc, err := reedsolomon.New(4, 2)
		if err != nil {
			b.Fatal(err)
		}
		shards := reedsolomon.AllocAligned(6, storage.DefaultSegmentSize/4)
		for _, s := range shards[:4] {
			copy(s, storagetest.RandomBytes(1, len(s)))
		}
		const rounds = 64
		start := time.Now()
		for range rounds {
			if err := enc.Encode(shards); err != nil {
				b.Fatal(err)
			}
		}
		rawRS.mbps = rounds * storage.DefaultSegmentSize / time.Since(start).Seconds() / 1e6
	})
	return rawRS.mbps
}

// BenchmarkRawReedSolomonEncode is the raw encode figure on its own.
func BenchmarkRawReedSolomonEncode(b *testing.B) {
	enc, err := reedsolomon.New(4, 2)
	if err != nil {
		b.Fatal(err)
	}
	shards := reedsolomon.AllocAligned(6, storage.DefaultSegmentSize/4)
	b.SetBytes(storage.DefaultSegmentSize)
	for b.Loop() {
		if err := enc.Encode(shards); err != nil {
			b.Fatal(err)
		}
	}
}

var hashFloor struct {
	once sync.Once
	mbps float64
}

// hashFloorThroughput measures, on one goroutine, the work a put cannot skip
// for one 4 MiB segment: reedsolomon encode plus SHA-256 of the blob, the
// segment and its six shards (3.5 passes over the bytes). It is the second
// yardstick: SHA-256 is an order of magnitude slower than encoding.
func hashFloorThroughput(b *testing.B) float64 {
	hashFloor.once.Do(func() {
		enc, err := reedsolomon.New(4, 2)
		if err != nil {
			b.Fatal(err)
		}
		seg := storagetest.RandomBytes(2, storage.DefaultSegmentSize)
		shards := reedsolomon.AllocAligned(6, storage.DefaultSegmentSize/4)
		blob := sha256.New()
		const rounds = 16
		start := time.Now()
		for range rounds {
			blob.Write(seg)
			sha256.Sum256(seg)
			for i := range 4 {
				copy(shards[i], seg[i*len(shards[i]):])
			}
			if err := enc.Encode(shards); err != nil {
				b.Fatal(err)
			}
			for _, sh := range shards {
				sha256.Sum256(sh)
			}
		}
		hashFloor.mbps = rounds * storage.DefaultSegmentSize / time.Since(start).Seconds() / 1e6
	})
	return hashFloor.mbps
}

// reportThroughput reports MB/s of blob bytes and the ratios to raw
// reedsolomon encode (x_raw_rs) and to encode+hashing on one core (x_hash_floor).
func reportThroughput(b *testing.B, bytesPerOp int64) {
	mbps := float64(bytesPerOp) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	b.ReportMetric(mbps, "MB/s")
	b.ReportMetric(rawRSThroughput(b), "raw_rs_MB/s")
	b.ReportMetric(mbps/rawRSThroughput(b), "x_raw_rs")
	b.ReportMetric(hashFloorThroughput(b), "hash_floor_MB/s")
	b.ReportMetric(mbps/hashFloorThroughput(b), "x_hash_floor")
}

type benchTarget struct {
	name  string
	peers func(b *testing.B) ([]storage.PeerRef, func(storage.PeerRef) storage.ShardPeer, map[string]storage.ShardPeer)
}

var benchTargets = []benchTarget{
	{"loopback", func(b *testing.B) ([]storage.PeerRef, func(storage.PeerRef) storage.ShardPeer, map[string]storage.ShardPeer) {
		c := storagetest.NewCluster(b, 6)
		return c.Refs(), c.Dial, c.Clients()
	}},
	{"loopback_tmpfs", func(b *testing.B) ([]storage.PeerRef, func(storage.PeerRef) storage.ShardPeer, map[string]storage.ShardPeer) {
		if _, err := os.Stat("/dev/shm"); err != nil {
			b.Skip("no /dev/shm")
		}
		c := storagetest.NewClusterIn(b, 6, "/dev/shm")
		return c.Refs(), c.Dial, c.Clients()
	}},
	{"memory", func(b *testing.B) ([]storage.PeerRef, func(storage.PeerRef) storage.ShardPeer, map[string]storage.ShardPeer) {
		_, refs, conns := storagetest.MemPeers(6)
		return refs, storagetest.DialMap(conns), conns
	}},
}

// BenchmarkPut: a 64 MiB blob through Put (k=4, m=2, 4 MiB segments) to six
// peers: "loopback" is real HTTP servers and fsynced ShardStores on temp
// dirs, "loopback_tmpfs" the same on /dev/shm (no disk latency), "memory"
// in-memory peers (no HTTP, no files; each peer still checks and copies).
func BenchmarkPut(b *testing.B) {
	data := storagetest.RandomBytes(42, benchBlob)
	for _, tg := range benchTargets {
		b.Run(tg.name, func(b *testing.B) {
			refs, dial, _ := tg.peers(b)
			rawRSThroughput(b)
			hashFloorThroughput(b)
			b.ResetTimer()
			for b.Loop() {
				if _, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{Peers: refs, Dial: dial}); err != nil {
					b.Fatal(err)
				}
			}
			reportThroughput(b, benchBlob)
		})
	}
}

// BenchmarkGet: the same blob read back with Get, every peer healthy.
func BenchmarkGet(b *testing.B) {
	data := storagetest.RandomBytes(43, benchBlob)
	for _, tg := range benchTargets {
		b.Run(tg.name, func(b *testing.B) {
			refs, dial, conns := tg.peers(b)
			m, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{Peers: refs, Dial: dial})
			if err != nil {
				b.Fatal(err)
			}
			rawRSThroughput(b)
			hashFloorThroughput(b)
			b.ResetTimer()
			for b.Loop() {
				if _, err := storage.Get(context.Background(), m, io.Discard, conns, storage.GetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			reportThroughput(b, benchBlob)
		})
	}
}

// heapSampler records the high-water mark of HeapInuse until stopped.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() float64 {
	close(h.stop)
	<-h.done
	return float64(h.peak.Load()) / (1 << 20)
}

// BenchmarkPeakHeap1GiB puts a 1 GiB blob, generated on the fly from a PRNG,
// to six loopback peers (HTTP + fsynced disk) with the defaults, then reads
// it back to io.Discard, reporting the HeapInuse high-water mark of each
// phase (peers included, they run in this process). Run with -benchtime=1x.
func BenchmarkPeakHeap1GiB(b *testing.B) {
	const size = 1 << 30
	c := storagetest.NewCluster(b, 6)
	ctx := context.Background()
	for b.Loop() {
		runtime.GC()
		h := sampleHeap()
		start := time.Now()
		m, err := storage.Put(ctx, storagetest.NewPRNGReader(7, size), storage.PutOptions{Peers: c.Refs(), Dial: c.Dial})
		putPeak, putTime := h.Stop(), time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		h = sampleHeap()
		start = time.Now()
		_, err = storage.Get(ctx, m, io.Discard, c.Clients(), storage.GetOptions{})
		getPeak, getTime := h.Stop(), time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(putPeak, "put_peak_heap_MiB")
		b.ReportMetric(getPeak, "get_peak_heap_MiB")
		b.ReportMetric(size/putTime.Seconds()/1e6, "put_MB/s")
		b.ReportMetric(size/getTime.Seconds()/1e6, "get_MB/s")
	}
}
