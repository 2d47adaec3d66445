//go:build linux

package server_test

// Scheduler scale (issue 5): one leader and 10,000 simulated workers
// speaking the real HTTP API through client.Client. The leader runs in a child
// process (this test binary re-executed into BenchmarkScaleLeaderChild), so
// its CPU time is its own, read from /proc/<pid>/stat, and not mixed with
// the fakes' client-side JSON and HTTP work in this process. Figures are in
// BENCHMARKS.md.
//
//	go test -run '^$' -bench 'BenchmarkScale_10kWorkers' -benchtime 1x ./scheduler/server/
//	PEERGRID_SCALE_PROFILE=/tmp/leader.prof go test -run '^$' -bench 'BenchmarkScale_10kWorkers' \
//	    -benchtime 1x -o /tmp/scheduler.test ./scheduler/server/ && go tool pprof -top /tmp/scheduler.test /tmp/leader.prof
//
// PEERGRID_SCALE_WINDOW (a duration, default 20s) sets how long the load runs.
// The profile covers the measured window only, not the job's submission or
// the workers' registration. PEERGRID_SCALE_LEASERS (default 200) sets how
// many workers lease at once; 0 leaves heartbeats alone, which measures
// what a heartbeat costs the leader. PEERGRID_SCALE_FLOOR (heartbeats
// alone) puts in the leader's place a server that reads each heartbeat and
// writes a fixed answer, doing nothing else: "http", a net/http server (what
// a request costs on this machine before the server does anything), or
// "stream", one plain TCP connection per heartbeating goroutine carrying a
// JSON line each way (what a long-lived stream per worker could cost).
// PEERGRID_SCALE_FLOOR=frames is the floor of the whole mix: a server that
// speaks the real worker stream (the upgrade, then frames) to the same
// fakes, heartbeats and leases both, and answers each frame with a fixed
// answer of the real one's shape (a lease: 8 tasks, and its reports
// accepted) without decoding it, committing or applying anything. What the
// leader costs above it is the grid's own work: the ledger, Raft, the
// handlers.
// PEERGRID_SCALE_LEASE_RATE caps the fleet's lease calls a second (the
// leader's own rate, to measure a floor at it).
// PEERGRID_SCALE_TRANSPORT=stream makes the fakes speak through the real
// worker stream (client.Client.WorkerStream): each heartbeating goroutine
// and each leasing goroutine has a client, and so a stream, of its own
// (as each real worker has one); "http" (the default) sends requests.
//
// The leader child (and the floor in its place) runs with the Ps a lone
// `peergrid agent --server` gives itself
// (runtimepolicy.AdaptServerGOMAXPROCS, the very same function: from 1 P,
// more while its load needs them; each change is logged to stderr), so
// the bench measures what a user's server meets; GOMAXPROCS in the
// environment wins, as it does for peergrid.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/runtimepolicy"
	"github.com/peergrid/peergrid/scheduler/server"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

const (
	scaleWorkers      = 10_000
	scaleTasks        = 1_000_000
	scaleHeartbeat    = 5 * time.Second // each worker's heartbeat period, spread evenly
	scaleHeartbeater  = 64              // goroutines sending heartbeats
	scaleLeaseMax     = 8               // tasks per lease call (a 4-core worker plus 4 prefetch)
	scaleChildEnv     = "PEERGRID_SCALE_LEADER_DIR"
	scaleTokenEnv     = "PEERGRID_SCALE_TOKEN"
	scaleProfileEnv   = "PEERGRID_SCALE_PROFILE"
	scaleWindowEnv    = "PEERGRID_SCALE_WINDOW"
	scaleLeasersEnv   = "PEERGRID_SCALE_LEASERS"
	scaleFloorEnv     = "PEERGRID_SCALE_FLOOR"
	scaleTransportEnv = "PEERGRID_SCALE_TRANSPORT"
	scaleLeaseRateEnv = "PEERGRID_SCALE_LEASE_RATE"
	scaleAddrPrefix   = "SCALE_LEADER_ADDR="
)

var scaleEngines = []string{"wazero"}

// scaleLeasers is how many workers lease at any moment (PEERGRID_SCALE_LEASERS).
var scaleLeasers = 200

// BenchmarkScale_10kWorkers registers 10,000 workers, then for a window
// keeps every one heartbeating every 5 s (2,000 heartbeats/s, spread
// evenly; each carries the leases its worker holds and runs, as the real
// worker's do) while 200 of them at a time lease 8 tasks of a 1,000,000-task job,
// each leasing goroutine moving on to the next worker after every round.
// As the real worker does, a worker's lease call carries the reports of the
// tasks it got on its previous turn (all done): one call a round. It
// reports the leader's CPU (cores, and µs per request and per task),
// lease-grant latency (calls that got tasks) p50/p99, and the heartbeats,
// leases and tasks (reports accepted) handled per second.
func BenchmarkScale_10kWorkers(b *testing.B) {
	window := 20 * time.Second
	if v := os.Getenv(scaleWindowEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", scaleWindowEnv, err)
		}
		window = d
	}
	if v := os.Getenv(scaleLeasersEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > scaleWorkers {
			b.Fatalf("%s=%q: want 0 to %d leasing workers", scaleLeasersEnv, v, scaleWorkers)
		}
		scaleLeasers = n
	}
	floor := os.Getenv(scaleFloorEnv)
	if floor != "" && floor != "http" && floor != "stream" && floor != "frames" {
		b.Fatalf("%s=%q: want http, stream or frames", scaleFloorEnv, floor)
	}
	transport := os.Getenv(scaleTransportEnv)
	if transport != "" && transport != "http" && transport != "stream" {
		b.Fatalf("%s=%q: want http or stream", scaleTransportEnv, transport)
	}
	leader := startScaleLeader(b)
	c := scaleClient(leader.addr, leader.token)
	switch floor {
	case "":
		submitScaleJob(b, c)
	case "frames":
		transport = "stream" // the floor speaks worker streams only
	default:
		scaleLeasers = 0 // the floor server answers heartbeats only
	}
	heartbeaters = scaleHeartbeaters(b, c, leader.addr, floor, transport == "stream")
	leasers = scaleLeaseClients(c, leader, transport == "stream")
	regStart := time.Now()
	registerScaleWorkers(b, c)
	registrations := float64(scaleWorkers) / time.Since(regStart).Seconds()

	b.ResetTimer()
	for range b.N {
		st := runScaleWindow(b, c, leader, window)
		b.ReportMetric(st.leaderCores, "leader-cores")
		b.ReportMetric(st.leaderCPUPerReq, "leader-cpu-us/req")
		b.ReportMetric(st.leaderCPUPerTask, "leader-cpu-us/task")
		b.ReportMetric(st.requestsPerSec, "requests/s")
		b.ReportMetric(st.clientCores, "fakes-cores")
		b.ReportMetric(st.grantP50, "grant-p50-ms")
		b.ReportMetric(st.grantP99, "grant-p99-ms")
		b.ReportMetric(st.hbP99, "heartbeat-p99-ms")
		b.ReportMetric(st.heartbeatsPerSec, "heartbeats/s")
		b.ReportMetric(st.leasesPerSec, "leases/s")
		b.ReportMetric(st.tasksPerSec, "tasks/s")
		b.ReportMetric(st.entriesPerSec, "raft-entries/s")
	}
	b.ReportMetric(registrations, "registrations/s")
	b.ReportMetric(0, "ns/op")
}

// submitScaleJob puts the tiny module and submits the 1,000,000-task job.
func submitScaleJob(b *testing.B, c *client.Client) {
	ctx := context.Background()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Submit(ctx, &tasks.JobSpec{Name: "scale", ModuleHash: storage.Hash(mod), Args: []string{"{index}"},
		Tasks: scaleTasks, Timeout: 10 * time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}); err != nil {
		b.Fatal(err)
	}
}

type scaleStats struct {
	leaderCores, clientCores                    float64
	leaderCPUPerReq                             float64 // µs of leader CPU per heartbeat, lease or report call
	leaderCPUPerTask                            float64 // µs of leader CPU per task reported
	requestsPerSec                              float64
	grantP50, grantP99, hbP99                   float64 // ms
	heartbeatsPerSec, leasesPerSec, tasksPerSec float64
	entriesPerSec                               float64 // Raft log entries the leader appended
}

// runScaleWindow runs the heartbeat and lease load and measures a window
// of it, from when every leasing goroutine has gone once round its
// workers: from then on every lease call carries its worker's reports, as
// a busy real worker's do.
func runScaleWindow(b *testing.B, c *client.Client, leader *scaleLeader, window time.Duration) scaleStats {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg, warm              sync.WaitGroup
		heartbeats, tasksDone atomic.Int64
		requests              atomic.Int64 // every call the fakes made
		errs                  atomic.Int64
		measuring             atomic.Bool // latencies are kept only in the window
		hbLat                 = make([][]time.Duration, scaleHeartbeater)
		grantLat              = make([][]time.Duration, scaleLeasers)
	)
	paced := leasePace(ctx, b)
	due := make([]chan int, len(heartbeaters))
	for h := range due {
		due[h] = make(chan int, scaleWorkers/len(heartbeaters)+1)
	}
	wg.Add(1)
	go func() { defer wg.Done(); dispatchHeartbeats(ctx, due) }()
	for h, heartbeat := range heartbeaters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range due[h] {
				began := time.Now()
				requests.Add(1)
				if err := heartbeat(ctx, w); err != nil {
					countScaleErr(ctx, &errs, err)
					continue
				}
				if measuring.Load() {
					hbLat[h] = append(hbLat[h], time.Since(began))
				}
				heartbeats.Add(1)
			}
		}()
	}
	warm.Add(scaleLeasers)
	for g := range scaleLeasers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending := map[int][]api.Report{} // per worker of this goroutine: its finished tasks, not yet reported
			for round, w := 1, g; ctx.Err() == nil; round, w = round+1, (w+scaleLeasers)%scaleWorkers {
				if round == scaleWorkers/scaleLeasers+1 {
					warm.Done()
				}
				if paced != nil {
					select {
					case <-paced:
					case <-ctx.Done():
						return
					}
				}
				requests.Add(1)
				lat, got, reported, err := leaseCarrying(ctx, leasers[g], w, pending[w])
				if err != nil {
					countScaleErr(ctx, &errs, err)
					continue
				}
				tasksDone.Add(int64(reported))
				pending[w] = finishedReports(got)
				scaleHolds(w, got)
				if len(got) > 0 && measuring.Load() {
					grantLat[g] = append(grantLat[g], lat)
				}
			}
		}()
	}
	warm.Wait()
	index0 := scaleRaftIndex(b, c)
	cpu0, self0, start := leader.cpu(b), scaleSelfCPU(), time.Now()
	req0, hb0, tasks0 := requests.Load(), heartbeats.Load(), tasksDone.Load()
	measuring.Store(true)
	leader.tell(b, scaleWindowStarts)
	<-time.After(window) // the measured window: the load runs meanwhile
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, self1 := leader.cpu(b), scaleSelfCPU()
	leader.tell(b, scaleWindowEnds)
	entries := float64(scaleRaftIndex(b, c) - index0)
	reqs, hbCount, taskCount := float64(requests.Load()-req0), float64(heartbeats.Load()-hb0), float64(tasksDone.Load()-tasks0)
	cancel()
	wg.Wait()
	if n := errs.Load(); n > 0 {
		b.Logf("%d calls failed; first: %v", n, scaleFirstErr.Load())
	}
	grants, hbs := slices.Concat(grantLat...), slices.Concat(hbLat...)
	leaderUs := float64((cpu1 - cpu0).Microseconds())
	return scaleStats{
		leaderCPUPerReq: leaderUs / reqs, leaderCPUPerTask: leaderUs / max(taskCount, 1), requestsPerSec: reqs / elapsed.Seconds(),
		leaderCores: (cpu1 - cpu0).Seconds() / elapsed.Seconds(), clientCores: (self1 - self0).Seconds() / elapsed.Seconds(),
		grantP50: scalePercentile(grants, 50), grantP99: scalePercentile(grants, 99), hbP99: scalePercentile(hbs, 99),
		heartbeatsPerSec: hbCount / elapsed.Seconds(),
		leasesPerSec:     float64(len(grants)) / elapsed.Seconds(),
		tasksPerSec:      taskCount / elapsed.Seconds(),
		entriesPerSec:    entries / elapsed.Seconds(),
	}
}

// leasePace, when PEERGRID_SCALE_LEASE_RATE sets lease calls a second
// for the whole fleet, gives a leasing goroutine leave for each call at
// that rate (nil: as fast as answers come). It puts a floor server at
// the leader's own request rate: per request, a server costs more the
// fewer requests it has to share each wake-up.
func leasePace(ctx context.Context, b *testing.B) <-chan struct{} {
	v := os.Getenv(scaleLeaseRateEnv)
	if v == "" {
		return nil
	}
	rate, err := strconv.Atoi(v)
	if err != nil || rate < 1 {
		b.Fatalf("%s=%q: want lease calls a second", scaleLeaseRateEnv, v)
	}
	leave := make(chan struct{}, scaleLeasers)
	go func() {
		const tick = time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		start, given := time.Now(), 0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for due := int(now.Sub(start).Seconds() * float64(rate)); given < due; given++ {
					select {
					case leave <- struct{}{}:
					default: // every leaser has leave waiting: this one is lost, as a busy fleet's would be
					}
				}
			}
		}
	}()
	return leave
}

// scaleRaftIndex is the leader's last Raft log index (0 for a floor server).
func scaleRaftIndex(b *testing.B, c *client.Client) uint64 {
	if os.Getenv(scaleFloorEnv) != "" {
		return 0
	}
	st, err := c.Status(context.Background())
	if err != nil {
		b.Fatalf("leader status: %v", err)
	}
	return st.LastIndex
}

// dispatchHeartbeats makes worker i due at i/scaleWorkers of every period,
// so heartbeats arrive evenly, on heartbeater i mod len(due): a worker's
// heartbeats always travel through the same client (and stream), as a
// real worker's do. It closes due when ctx ends.
func dispatchHeartbeats(ctx context.Context, due []chan int) {
	defer func() {
		for _, ch := range due {
			close(ch)
		}
	}()
	const tick = 10 * time.Millisecond
	perTick := scaleWorkers * int(tick) / int(scaleHeartbeat)
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for range perTick {
				select {
				case due[next%len(due)] <- next:
				default: // the heartbeater is behind: this one is skipped, and counted by its absence
				}
				next = (next + 1) % scaleWorkers
			}
		}
	}
}

// leaseCarrying makes worker w's lease call as the real worker makes it:
// carrying the reports of its finished tasks (then without a long poll).
// It returns the call's latency, the tasks granted and how many reports
// were accepted; a report refused is an error.
func leaseCarrying(ctx context.Context, c *client.Client, w int, reports []api.Report) (time.Duration, []api.Assignment, int, error) {
	id := scaleWorkerID(w)
	req := &api.LeaseRequest{Worker: id, Cores: 4, Max: scaleLeaseMax, Wait: time.Second, Engines: scaleEngines, Reports: reports}
	if len(reports) > 0 {
		req.Wait = 0
	}
	began := time.Now()
	resp, err := c.LeaseWithReports(ctx, req)
	lat := time.Since(began)
	if err != nil {
		return lat, nil, 0, err
	}
	if len(resp.Accepted) != len(reports) || slices.Contains(resp.Accepted, false) {
		return lat, resp.Tasks, 0, fmt.Errorf("worker %s: a report was refused: %v", id, resp.Accepted)
	}
	return lat, resp.Tasks, len(reports), nil
}

// finishedReports reports every granted task done at once.
func finishedReports(got []api.Assignment) []api.Report {
	reps := make([]api.Report, len(got))
	for i, a := range got {
		reps[i] = api.Report{TaskRef: api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt},
			Result: tasks.Result{Stdout: []byte(strconv.Itoa(a.Index) + "\n"), Duration: time.Millisecond, Engine: "wazero"}}
	}
	return reps
}

// scaleFirstErr keeps the first error of a window, for the log.
var scaleFirstErr atomic.Value

func countScaleErr(ctx context.Context, errs *atomic.Int64, err error) {
	if ctx.Err() == nil {
		errs.Add(1)
		scaleFirstErr.CompareAndSwap(nil, err.Error())
	}
}

func scaleWorkerID(w int) string { return fmt.Sprintf("sim-%05d", w) }

// scaleHeld is what each simulated worker holds: the tasks of its last
// lease, until its next turn reports them.
var scaleHeld [scaleWorkers]atomic.Pointer[[]api.TaskRef]

// scaleHolds records that worker w holds the tasks it was just granted.
func scaleHolds(w int, got []api.Assignment) {
	refs := make([]api.TaskRef, len(got))
	for i, a := range got {
		refs[i] = api.TaskRef{Job: a.Job, Index: a.Index, Attempt: a.Attempt}
	}
	scaleHeld[w].Store(&refs)
}

// scaleHeartbeatReq is worker w's heartbeat as the real worker sends it:
// with the leases it holds (an empty list, never none) and those it runs
// (here all it holds).
func scaleHeartbeatReq(w int) *api.HeartbeatRequest {
	held := []api.TaskRef{}
	if p := scaleHeld[w].Load(); p != nil {
		held = *p
	}
	return &api.HeartbeatRequest{Worker: scaleWorkerID(w), Cores: 4, Engines: scaleEngines, Running: held, Held: held}
}

// registerScaleWorkers heartbeats each worker once, through the
// heartbeater that carries its heartbeats: its first contact commits it
// to the ledger as alive.
func registerScaleWorkers(b *testing.B, c *client.Client) {
	b.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	for h, heartbeat := range heartbeaters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := h; w < scaleWorkers; w += len(heartbeaters) {
				if err := heartbeat(context.Background(), w); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("registering workers: %v", err)
	}
}

// scaleClient is an client.Client with enough idle keep-alive connections for
// every concurrent fake.
func scaleClient(addr, token string) *client.Client {
	c := client.New(addr, token)
	n := scaleHeartbeater + scaleLeasers + 16
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: time.Minute}}
	return c
}

// leasers are the leasing goroutines' clients, one each.
var leasers []*client.Client

// scaleLeaseClients is a client per leasing goroutine: the shared one,
// or with streams one of its own each (so a stream of its own).
func scaleLeaseClients(c *client.Client, leader *scaleLeader, streams bool) []*client.Client {
	out := make([]*client.Client, scaleLeasers)
	for i := range out {
		out[i] = c
		if streams {
			out[i] = scaleStreamClient(leader.addr, leader.token)
		}
	}
	return out
}

// scaleStreamClient is a client whose worker calls go over a worker
// stream of its own.
func scaleStreamClient(addr, token string) *client.Client {
	c := scaleClient(addr, token)
	c.WorkerStream = true
	return c
}

func scalePercentile(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[min(len(d)-1, len(d)*p/100)].Microseconds()) / 1000
}

func scaleSelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scaleLeader is the leader's child process.
type scaleLeader struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // lines that tell it the window starts and ends
	addr  string
	token string
}

// The lines the parent writes to the leader child's stdin.
const (
	scaleWindowStarts = "window-starts"
	scaleWindowEnds   = "window-ends"
)

// tell writes one control line to the leader child.
func (l *scaleLeader) tell(b *testing.B, line string) {
	if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
		b.Fatalf("telling the leader child %q: %v", line, err)
	}
}

// startScaleLeader re-executes this test binary as a lone leader and waits
// for it to print its address; the leader stops when its stdin closes.
func startScaleLeader(b *testing.B) *scaleLeader {
	b.Helper()
	token := "scale-token"
	args := []string{"-test.run=^$", "-test.bench=^BenchmarkScaleLeaderChild$", "-test.benchtime=1x"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), scaleChildEnv+"="+b.TempDir(), scaleTokenEnv+"="+token)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	l := &scaleLeader{cmd: cmd, stdin: stdin, token: token}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), scaleAddrPrefix); ok { // the line may start with the benchmark's name
			l.addr = strings.TrimSpace(a)
			break
		}
	}
	if l.addr == "" {
		b.Fatal("leader child exited without printing its address")
	}
	go func() { // keep draining its output so it never blocks
		for sc.Scan() {
		}
	}()
	return l
}

// cpu is the child's user+system CPU time so far, from /proc/<pid>/stat.
func (l *scaleLeader) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", l.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	utime, _ := strconv.ParseInt(fields[11], 10, 64)              // field 14
	stime, _ := strconv.ParseInt(fields[12], 10, 64)              // field 15
	const ticksPerSecond = 100                                    // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// BenchmarkScaleLeaderChild is the leader process of BenchmarkScale_10kWorkers;
// run any other way it skips.
func BenchmarkScaleLeaderChild(b *testing.B) {
	dir := os.Getenv(scaleChildEnv)
	if dir == "" {
		b.Skip("the leader process of BenchmarkScale_10kWorkers")
	}
	// As `peergrid agent --server` does; its changes go to stderr.
	defer runtimepolicy.AdaptServerGOMAXPROCS(context.Background(), os.Getenv, slog.New(slog.NewTextHandler(os.Stderr, nil)))()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if floor := os.Getenv(scaleFloorEnv); floor != "" {
		serveScaleFloor(b, ln, floor)
		return
	}
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	raftBind := raftLn.Addr().String()
	raftLn.Close()
	addr := "http://" + ln.Addr().String()
	srv, err := server.NewServer(server.ServerConfig{
		Store: store.Config{ID: "leader", DataDir: filepath.Join(dir, "server"), RaftBind: raftBind, Fast: true},
		Token: os.Getenv(scaleTokenEnv), BootstrapExpect: 1, HTTPAddr: addr, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !srv.Store().IsLeader() {
		if time.Now().After(deadline) {
			b.Fatal("the leader child did not become leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println(scaleAddrPrefix + addr)
	if err := followScaleParent(os.Stdin, os.Getenv(scaleProfileEnv)); err != nil {
		b.Fatal(err)
	}
}

// followScaleParent reads the parent's control lines until it closes
// stdin, profiling the leader's CPU over the measured window when
// profilePath is set. With it, the leader's allocations are written at the
// window's start and end (profilePath+".allocs0" and ".allocs1"): `go tool
// pprof -sample_index alloc_space -base X.allocs0 X.allocs1` is the window's.
func followScaleParent(stdin io.Reader, profilePath string) error {
	sc := bufio.NewScanner(stdin)
	var profile *os.File
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == scaleWindowStarts && profilePath != "":
			if err := writeAllocs(profilePath + ".allocs0"); err != nil {
				return err
			}
			f, err := os.Create(profilePath)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			profile = f
		case line == scaleWindowEnds && profile != nil:
			pprof.StopCPUProfile()
			if err := profile.Close(); err != nil {
				return err
			}
			profile = nil
			if err := writeAllocs(profilePath + ".allocs1"); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// writeAllocs writes the leader's allocation profile so far to path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// heartbeaters are the heartbeating goroutines' calls, one each.
var heartbeaters []func(ctx context.Context, w int) error

// scaleHeartbeaters makes one heartbeat call per heartbeating goroutine:
// the client's, or for the stream floor a JSON line each way on a TCP
// connection of its own, encoded and decoded as the client does.
func scaleHeartbeaters(b *testing.B, c *client.Client, addr, floor string, streams bool) []func(context.Context, int) error {
	out := make([]func(context.Context, int) error, scaleHeartbeater)
	for i := range out {
		hc := c
		if streams {
			hc = scaleStreamClient(addr, c.Token)
		}
		out[i] = func(ctx context.Context, w int) error {
			_, err := hc.Heartbeat(ctx, scaleHeartbeatReq(w))
			return err
		}
		if floor != "stream" {
			continue
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		answers := bufio.NewReader(conn)
		out[i] = func(_ context.Context, w int) error {
			line, err := json.Marshal(scaleHeartbeatReq(w))
			if err != nil {
				return err
			}
			if _, err := conn.Write(append(line, '\n')); err != nil {
				return err
			}
			answer, err := answers.ReadSlice('\n')
			if err != nil {
				return err
			}
			var resp api.HeartbeatResponse
			return json.Unmarshal(answer, &resp)
		}
	}
	return out
}

// serveScaleFloor serves heartbeats in the leader's place doing nothing
// but read each and write a fixed answer: over net/http ("http"), or as
// JSON lines on plain TCP connections ("stream").
func serveScaleFloor(b *testing.B, ln net.Listener, floor string) {
	answer := []byte(`{"ttl_ns":15000000000,"pause_keep_ns":3600000000000}` + "\n")
	if floor == "frames" {
		hs := &http.Server{Handler: floorFrames(answer), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
	} else if floor == "stream" {
		go serveFloorStreams(ln, answer)
		defer ln.Close()
	} else {
		hs := &http.Server{Handler: floorHTTP(answer), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
	}
	fmt.Println(scaleAddrPrefix + "http://" + ln.Addr().String())
	if err := followScaleParent(os.Stdin, os.Getenv(scaleProfileEnv)); err != nil {
		b.Fatal(err)
	}
}

func floorHTTP(answer []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	return mux
}

// floorFrames serves worker streams answering each frame with a fixed
// answer: a heartbeat's first with heartbeat, the rest Unchanged, and a
// quiet heartbeat not at all (as the leader answers a steady worker, and
// with the quiet heartbeats it serves); a lease with 8 tasks and as many reports
// accepted as its body holds (counted, not decoded: the fakes check it).
func floorFrames(heartbeat []byte) http.Handler {
	var leaseAnswers [scaleLeaseMax + 1][]byte
	for n := range leaseAnswers {
		leaseAnswers[n] = floorLeaseAnswer(n)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+stream.Path, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		out := bufio.NewWriter(conn)
		head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + stream.Protocol + "\r\n"
		if strings.Contains(r.Header.Get(stream.FeaturesHeader), stream.FeatureQuietHeartbeats) {
			head += stream.FeaturesHeader + ": " + stream.FeatureQuietHeartbeats + "\r\n"
		}
		_, _ = out.WriteString(head + "\r\n")
		if out.Flush() != nil {
			return
		}
		told := false
		answer := func(f stream.Frame) bool {
			body := stream.Unchanged
			switch {
			case f.Kind == stream.KindQuietHeartbeat:
				return true // nothing new to say, as the leader says it: nothing
			case f.Kind == stream.KindLease:
				body = leaseAnswers[min(bytes.Count(f.Body, []byte(`"attempt":`)), scaleLeaseMax)]
			case !told:
				body, told = heartbeat, true
			}
			return stream.Write(out, stream.Frame{Kind: stream.KindAnswer, ID: f.ID, Body: body}) == nil && out.Flush() == nil
		}
		held, _ := buf.Reader.Peek(buf.Reader.Buffered()) // frames sent behind the upgrade
		serveFloorFrames(conn, slices.Clone(held), answer)
	})
	return mux
}

// serveFloorFrames reads frames off conn and answers each, reading as the
// leader's stream reader does (scheduler/server/streamread.go): inside one
// RawConn.Read callback, one read system call per wake-up when a read
// comes back short (it drained the socket), so the floor pays no read
// the leader does not.
func serveFloorFrames(conn net.Conn, held []byte, answer func(stream.Frame) bool) {
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return
	}
	buf := append(make([]byte, 0, 64<<10), held...)
	// serveHeld answers the whole frames buf holds, keeping the rest; false
	// when the stream is broken.
	serveHeld := func() bool {
		for {
			f, used, _, err := stream.Parse(buf, stream.MaxRequest)
			if err != nil {
				return false
			}
			if used == 0 {
				return true
			}
			if !answer(f) {
				return false
			}
			buf = buf[:copy(buf, buf[used:])]
		}
	}
	_ = rc.Read(func(fd uintptr) bool {
		for drained := false; ; {
			if !serveHeld() {
				return true
			}
			if drained {
				return false // wait for the next edge
			}
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, cap(buf))
			}
			room := buf[len(buf):cap(buf)]
			n, err := syscall.Read(int(fd), room)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false
			case err != nil || n == 0:
				return true
			}
			buf, drained = buf[:len(buf)+n], n < len(room)
		}
	})
}

// floorLeaseAnswer is a lease's answer as the leader writes it: 8 tasks of
// the scale job, and accepted reports.
func floorLeaseAnswer(accepted int) []byte {
	mod := storage.Hash(examples.Tiny())
	resp := api.LeaseResponse{Accepted: slices.Repeat([]bool{true}, accepted)}
	for i := range scaleLeaseMax {
		resp.Tasks = append(resp.Tasks, api.Assignment{Job: "j-0123456789abcdef", Index: 500_000 + i, Attempt: 1, ModuleHash: mod,
			Name: "scale", Args: []string{strconv.Itoa(500_000 + i)}, Seed: 0x1234_5678_9abc_def0 + uint64(i), Timeout: 10 * time.Minute,
			Memory: 1 << 20, MaxOutput: 1 << 10, Expiry: time.Now().Add(10 * time.Minute)})
	}
	body, err := json.Marshal(resp)
	if err != nil {
		panic(err)
	}
	return append(body, '\n')
}

// serveFloorStreams answers every line on every connection with answer.
func serveFloorStreams(ln net.Listener, answer []byte) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			lines := bufio.NewReader(conn)
			for {
				if _, err := lines.ReadSlice('\n'); err != nil {
					return
				}
				if _, err := conn.Write(answer); err != nil {
					return
				}
			}
		}()
	}
}
