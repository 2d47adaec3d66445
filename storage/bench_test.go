package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

var shaFloor struct {
	once sync.Once
	mbps float64
}

// sha256FloorThroughput measures the one pass a put or a get cannot skip
// whatever the design: SHA-256 over the blob's bytes (its name), on one
// goroutine, in MB/s. It is the "mandatory work floor" yardstick: raw
// reedsolomon is an order of magnitude faster than it on this CPU.
func sha256FloorThroughput(b *testing.B) float64 {
	shaFloor.once.Do(func() {
		seg := storagetest.RandomBytes(2, storage.DefaultSegmentSize)
		blob := sha256.New()
		const rounds = 32
		start := time.Now()
		for range rounds {
			blob.Write(seg)
		}
		blob.Sum(nil)
		shaFloor.mbps = rounds * storage.DefaultSegmentSize / time.Since(start).Seconds() / 1e6
	})
	return shaFloor.mbps
}

// benchCPU notes the process's CPU time (user + system, every goroutine:
// the peers run in this process too) when a benchmark's timed part starts.
type benchCPU struct{ start time.Duration }

func startCPU(b *testing.B) *benchCPU {
	b.ResetTimer()
	return &benchCPU{start: processCPU()}
}

// reportThroughput reports MB/s of blob bytes, the ratios to raw
// reedsolomon encode (x_raw_rs) and to one SHA-256 pass on one core
// (x_sha256_floor), and MB of blob per CPU-second spent by the whole
// process (MB/cpu_s), which the machine's load disturbs far less than
// wall-clock throughput does.
func reportThroughput(b *testing.B, bytesPerOp int64, cpu *benchCPU) {
	total := float64(bytesPerOp) * float64(b.N) / 1e6
	mbps := total / b.Elapsed().Seconds()
	b.ReportMetric(mbps, "MB/s")
	b.ReportMetric(rawRSThroughput(b), "raw_rs_MB/s")
	b.ReportMetric(mbps/rawRSThroughput(b), "x_raw_rs")
	b.ReportMetric(sha256FloorThroughput(b), "sha256_MB/s")
	b.ReportMetric(mbps/sha256FloorThroughput(b), "x_sha256_floor")
	if used := processCPU() - cpu.start; used > 0 {
		b.ReportMetric(total/used.Seconds(), "MB/cpu_s")
	}
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
			sha256FloorThroughput(b)
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := storage.Put(context.Background(), bytes.NewReader(data), storage.PutOptions{Peers: refs, Dial: dial}); err != nil {
					b.Fatal(err)
				}
			}
			reportThroughput(b, benchBlob, cpu)
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
			sha256FloorThroughput(b)
			cpu := startCPU(b)
			for b.Loop() {
				if _, err := storage.Get(context.Background(), m, io.Discard, conns, storage.GetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			reportThroughput(b, benchBlob, cpu)
		})
	}
}

// BenchmarkDiskFloor is the disk's own floor for a put to six loopback peers
// on it: the 96 shard files of a 64 MiB blob (1 MiB each, k=4, m=2), written
// as ShardStore writes them (temp file, write, fsync, close, rename into a
// per-prefix directory, fsync that directory) with as many in flight as Put
// keeps (inFlight), and no hashing, coding or HTTP. MB/s is of blob bytes, so
// it compares directly with BenchmarkPut/loopback.
func BenchmarkDiskFloor(b *testing.B) {
	for _, inFlight := range []int{6, 12, 24} {
		b.Run(fmt.Sprintf("in_flight_%d", inFlight), func(b *testing.B) {
			dir := b.TempDir()
			shard := storagetest.RandomBytes(44, storage.DefaultSegmentSize/storage.DefaultK)
			const shards = benchBlob / storage.DefaultSegmentSize * (storage.DefaultK + storage.DefaultM)
			for _, d := range []string{"tmp", "shards"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
					b.Fatal(err)
				}
			}
			round := 0
			for b.Loop() {
				round++
				sem := make(chan struct{}, inFlight)
				var wg sync.WaitGroup
				var failed atomic.Value
				for i := range shards {
					sem <- struct{}{}
					wg.Go(func() {
						defer func() { <-sem }()
						if err := writeSynced(dir, fmt.Sprintf("%02x", i%256), fmt.Sprintf("r%d-s%d", round, i), shard); err != nil {
							failed.Store(err)
						}
					})
				}
				wg.Wait()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBlob)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// writeSynced writes data durably as dir/shards/sub/name, the way a
// ShardStore installs a shard.
func writeSynced(dir, sub, name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Join(dir, "tmp"), name+"-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dst := filepath.Join(dir, "shards", sub)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dst, name)); err != nil {
		return err
	}
	d, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
