package store

// Benchmarks of the ledger on a 3-server Raft group (issue 4): task-state
// changes committed per second, bytes per task in a snapshot and in the
// BoltDB log, and the time from a leader kill to the next committed change.
//
//	go test -run '^$' -bench 'BenchmarkGroup' -benchtime 2s ./scheduler/
//	go test -run '^$' -bench 'BenchmarkGroup_LeaderKill' -benchtime 10x ./scheduler/
//
// The group is built by hand here (package scheduler, so the benchmarks can
// propose typed commands straight to the Store): three Stores on loopback
// TCP, BoltDB with fsync in temp dirs, and raft's default timeouts as
// `peergrid agent --server` uses them (the test cluster's 100ms leader lease
// gives up leadership when a loaded machine stalls an fsync). A change is a lease grant or a completion, as a worker causes
// them: a task costs two.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

var benchLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// benchGroup is three voters on loopback.
type benchGroup struct {
	tb     testing.TB
	fast   bool
	stores []*Store
	dirs   []string
}

// newBenchGroup starts s1 alone, then adds s2 and s3 as voters, and waits
// until all three have applied the configuration.
func newBenchGroup(tb testing.TB, fast bool) *benchGroup {
	tb.Helper()
	g := &benchGroup{tb: tb, fast: fast}
	for i := range 3 {
		dir := tb.TempDir()
		s, err := Open(Config{ID: fmt.Sprintf("s%d", i+1), DataDir: dir, RaftBind: benchAddr(tb),
			Bootstrap: i == 0, Fast: fast, SnapshotThreshold: 1 << 40, Logger: benchLog})
		if err != nil {
			tb.Fatal(err)
		}
		g.stores = append(g.stores, s)
		g.dirs = append(g.dirs, dir)
	}
	tb.Cleanup(g.close)
	first := g.stores[0]
	benchPoll(tb, 10*time.Second, "s1 leads alone", first.IsLeader)
	for _, s := range g.stores[1:] {
		if err := first.Raft().AddVoter(raft.ServerID(s.cfg.ID), s.transport.LocalAddr(), 0, 10*time.Second).Error(); err != nil {
			tb.Fatal(err)
		}
	}
	g.waitApplied(g.stores)
	return g
}

func benchAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// benchPoll polls cond every millisecond until it holds (never sleeps to settle).
func benchPoll(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// close stops every store still running; it may be called more than once.
func (g *benchGroup) close() {
	for i, s := range g.stores {
		if s != nil {
			s.Close()
			g.stores[i] = nil
		}
	}
}

// leader polls until one running store leads.
func (g *benchGroup) leader() *Store {
	g.tb.Helper()
	var l *Store
	benchPoll(g.tb, 20*time.Second, "a leader", func() bool {
		for _, s := range g.stores {
			if s != nil && s.IsLeader() {
				l = s
				return true
			}
		}
		return false
	})
	return l
}

// waitApplied polls until every given store has applied the leader's last index.
func (g *benchGroup) waitApplied(stores []*Store) {
	g.tb.Helper()
	l := g.leader()
	if err := l.Barrier(context.Background()); err != nil {
		g.tb.Fatal(err)
	}
	target := l.Raft().AppliedIndex()
	benchPoll(g.tb, 20*time.Second, "followers apply the log", func() bool {
		for _, s := range stores {
			if s.Raft().AppliedIndex() < target {
				return false
			}
		}
		return true
	})
}

func (g *benchGroup) propose(s *Store, c ledger.Command) any {
	g.tb.Helper()
	resp, err := s.Propose(context.Background(), c)
	if err != nil {
		g.tb.Fatal(err)
	}
	return resp
}

// submit commits the test module and a job of n trivial tasks; it returns the job id.
func (g *benchGroup) submit(n int) string {
	g.tb.Helper()
	l := g.leader()
	g.propose(l, &ledger.PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule})
	id := "j-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	g.propose(l, &ledger.SubmitJobCommand{ID: id, Now: time.Now().UnixNano(), Spec: tasks.JobSpec{
		Name: "bench", ModuleHash: storage.Hash(testModule), Args: []string{"{index}"}, Tasks: n,
		Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1024}})
	return id
}

// benchRunWorkers drives n tasks through the leader as workers would: each of
// `workers` goroutines leases up to batch tasks in one command, then reports
// them in one command, until every task is done. It returns the changes
// committed (two per task).
func benchRunWorkers(tb testing.TB, l *Store, n, workers, batch int) int {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := benchWorker(l, fmt.Sprintf("w%d", w), &left, batch); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return 2 * n
}

func benchWorker(l *Store, id string, left *atomic.Int64, batch int) error {
	ctx := context.Background()
	for {
		want := min(int64(batch), left.Add(-int64(batch))+int64(batch))
		if want <= 0 {
			return nil
		}
		now := time.Now().UnixNano()
		resp, err := l.Propose(ctx, &ledger.LeaseTasksCommand{Worker: id, Max: int(want), Now: now, Slack: int64(time.Minute)})
		if err != nil {
			return err
		}
		grants, _ := resp.([]ledger.Grant)
		if len(grants) != int(want) {
			return fmt.Errorf("%s: leased %d of %d", id, len(grants), want)
		}
		reports := make([]api.Report, len(grants))
		for i, gr := range grants {
			reports[i] = api.Report{TaskRef: gr.Ref(), Result: tasks.Result{Duration: time.Millisecond,
				Stdout: []byte(strconv.Itoa(gr.Index) + "\n")}}
		}
		resp, err = l.Propose(ctx, &ledger.CompleteTasksCommand{Worker: id, Now: now, Reports: reports})
		if err != nil {
			return err
		}
		if acc, _ := resp.([]bool); len(acc) != len(reports) || slices.Contains(acc, false) {
			return fmt.Errorf("%s: completions refused: %v", id, acc)
		}
	}
}

// BenchmarkGroup_Changes measures task-state changes (lease grants and
// completions) committed per second through a 3-server group. One op is one
// task (two changes).
//
//   - sequential: one proposal at a time, one task per command: every change
//     waits for its own Raft round (fsync on a majority).
//   - concurrent-N: N goroutines, one task per command: the proposer
//     coalesces waiting proposals into one Raft entry.
//   - bulk-WxB: W workers each leasing B tasks per command and reporting B
//     per command, as the worker API does; the proposer batches across them.
func BenchmarkGroup_Changes(b *testing.B) {
	for _, c := range []struct {
		name           string
		workers, batch int
	}{
		{"sequential", 1, 1},
		{"concurrent-64", 64, 1},
		{"concurrent-512", 512, 1},
		{"bulk-8x64", 8, 64},
		{"bulk-4x256", 4, 256},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := newBenchGroup(b, false)
			l := g.leader()
			g.submit(b.N)
			b.ResetTimer()
			start := time.Now()
			changes := benchRunWorkers(b, l, b.N, c.workers, c.batch)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(changes)/elapsed.Seconds(), "changes/s")
			b.ReportMetric(float64(l.Raft().LastIndex())/float64(changes), "entries/change")
		})
	}
}

// BenchmarkGroup_BytesPerTask runs 10,000 trivial tasks (stdout "i\n")
// through a 3-server group and reports what each finished task costs in a
// snapshot of the ledger and in the Raft log: the commands' bytes in the
// log's entries, and the growth of the leader's raft.db file (BoltDB grows
// its file in steps, so that figure is coarse).
func BenchmarkGroup_BytesPerTask(b *testing.B) {
	const n = 10000
	for _, c := range []struct {
		name           string
		workers, batch int
	}{
		{"per-task-commands", 64, 1},
		{"bulk-8x64", 8, 64},
	} {
		b.Run(c.name, func(b *testing.B) {
			var snap, logData, fileGrowth float64
			for range b.N {
				g := newBenchGroup(b, false)
				l := g.leader()
				g.submit(n)
				emptySnap := benchSnapshotSize(b, l.FSM())
				first := l.Raft().LastIndex() + 1
				dbPath := filepath.Join(g.dirs[slices.Index(g.stores, l)], "raft.db")
				before := benchFileSize(b, dbPath)
				benchRunWorkers(b, l, n, c.workers, c.batch)
				g.waitApplied(g.stores)
				snap = float64(benchSnapshotSize(b, l.FSM())-emptySnap) / n
				logData = float64(benchLogBytes(b, l, first)) / n
				fileGrowth = float64(benchFileSize(b, dbPath)-before) / n
				g.close()
			}
			b.ReportMetric(snap, "snapshot-B/task")
			b.ReportMetric(logData, "log-B/task")
			b.ReportMetric(fileGrowth, "raftdb-file-B/task")
		})
	}
}

// benchSnapshotSize streams a snapshot of the ledger.FSM and counts its bytes.
func benchSnapshotSize(tb testing.TB, f *ledger.FSM) int64 {
	tb.Helper()
	sink := &benchSink{}
	if err := f.Snapshot().Write(sink); err != nil {
		tb.Fatal(err)
	}
	return sink.n
}

type benchSink struct{ n int64 }

func (s *benchSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *benchSink) Close() error                { return nil }
func (s *benchSink) Cancel() error               { return nil }
func (s *benchSink) ID() string                  { return "bench" }

var _ raft.SnapshotSink = (*benchSink)(nil)

// benchLogBytes sums the data of the log entries from first to the last index.
func benchLogBytes(tb testing.TB, s *Store, first uint64) int64 {
	tb.Helper()
	var total int64
	last := s.Raft().LastIndex()
	for i := first; i <= last; i++ {
		var entry raft.Log
		if err := s.boltStore.GetLog(i, &entry); err != nil {
			tb.Fatalf("log entry %d: %v", i, err)
		}
		total += int64(len(entry.Data))
	}
	return total
}

func benchFileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

// BenchmarkGroup_LeaderKillToNextCommit stops the leader without leaving
// (Raft shut down, as a crash looks to the others) and measures the time
// until the survivors commit the next change (a lease grant). One op is one
// kill on a fresh group; the median and worst are reported. Run with
// -benchtime 10x for the median over 10 kills.
//
//   - fast: the test cluster's timeouts (heartbeat and election 200ms).
//   - default: raft's defaults (1s), what `peergrid agent --server` uses.
func BenchmarkGroup_LeaderKillToNextCommit(b *testing.B) {
	for _, c := range []struct {
		name string
		fast bool
	}{{"fast", true}, {"default", false}} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for range b.N {
				b.StopTimer()
				g := newBenchGroup(b, c.fast)
				old := g.leader()
				g.submit(1000)
				g.propose(old, &ledger.LeaseTasksCommand{Worker: "w", Max: 1, Now: 1, Slack: 1})
				g.waitApplied(g.stores)
				b.StartTimer()
				start := time.Now()
				old.Close()
				g.stores[slices.Index(g.stores, old)] = nil
				benchCommitNextChange(b, g)
				took = append(took, time.Since(start))
				b.StopTimer()
				g.close()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
		})
	}
}

// benchCommitNextChange polls the survivors until one leads and commits a lease.
func benchCommitNextChange(tb testing.TB, g *benchGroup) {
	tb.Helper()
	benchPoll(tb, 30*time.Second, "a change committed by a new leader", func() bool {
		for _, s := range g.stores {
			if s == nil || !s.IsLeader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := s.Propose(ctx, &ledger.LeaseTasksCommand{Worker: "w", Max: 1, Now: 2, Slack: 1})
			cancel()
			return err == nil
		}
		return false
	})
}
