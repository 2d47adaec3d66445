package nemesis

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peergrid/peergrid/internal/proctest"
)

// A nemesis is one kind of fault. run applies it to the grid, holds it for
// d (the schedule's own sleep: the fault's length, not a wait for state),
// and heals it. A partition is held longer than the call bound in the
// short schedule, so that a call stuck on a connection the cut left
// hanging shows (a shorter cut ends before the bound, and the call with it).
type nemesis struct {
	name  string
	run   func(r *runner, d time.Duration)
	short [2]time.Duration // the range of holds in the short schedule
	long  [2]time.Duration // and in the long one
}

// nemeses are every kind of fault the schedule draws from.
var nemeses = []nemesis{
	{"isolate-leader", isolateLeader, [2]time.Duration{10 * time.Second, 13 * time.Second}, [2]time.Duration{2 * time.Second, 25 * time.Second}},
	{"split", split, [2]time.Duration{10 * time.Second, 13 * time.Second}, [2]time.Duration{2 * time.Second, 25 * time.Second}},
	{"one-way", oneWay, [2]time.Duration{10 * time.Second, 13 * time.Second}, [2]time.Duration{2 * time.Second, 25 * time.Second}},
	{"flap", flap, [2]time.Duration{6 * time.Second, 9 * time.Second}, [2]time.Duration{3 * time.Second, 20 * time.Second}},
	{"slow", slow, [2]time.Duration{3 * time.Second, 5 * time.Second}, [2]time.Duration{2 * time.Second, 15 * time.Second}},
	{"pause-leader", pauseLeader, [2]time.Duration{3 * time.Second, 6 * time.Second}, [2]time.Duration{2 * time.Second, 7 * time.Second}},
}

// isolateLeader cuts the leader off from everyone: its packets vanish.
func isolateLeader(r *runner, d time.Duration) {
	l := r.leader()
	r.g.net.Cut([]string{l.Host.Name})
	r.mark("isolate the leader " + l.ID)
	probes := r.probeReachable()
	time.Sleep(d)
	r.heal()
	probes.Wait()
}

// split cuts the grid in two: one server (the leader half the time) and
// some workers on the minority side; two servers, the other workers and
// the clients on the majority side.
func split(r *runner, d time.Duration) {
	m := r.g.servers[r.rng.IntN(len(r.g.servers))]
	if r.rng.IntN(2) == 0 {
		m = r.leader()
	}
	side := []string{m.Host.Name}
	for _, w := range r.g.workers {
		if r.rng.IntN(2) == 0 {
			side = append(side, w.name)
		}
	}
	r.g.net.Cut(side)
	r.mark("split off " + strings.Join(side, ","))
	probes := r.probeReachable()
	time.Sleep(d)
	r.heal()
	probes.Wait()
}

// oneWay drops the packets between the leader and the other servers in one
// direction only: the leader hears nobody, or nobody hears the leader.
func oneWay(r *runner, d time.Duration) {
	if err := r.g.net.CanDrop(); err != nil {
		r.g.t.Logf("nemesis one-way skipped: one-way drops do not work here: %v", err)
		return
	}
	l := r.leader()
	in := r.rng.IntN(2) == 0
	for _, f := range r.g.others(l) {
		from, to := l.Host.Name, f.Host.Name
		if in {
			from, to = to, from
		}
		if err := r.g.net.Drop(from, to); err != nil {
			r.g.fatalf("one-way drop %s -> %s: %v", from, to, err)
		}
	}
	if in {
		r.mark("the leader " + l.ID + " hears no other server")
	} else {
		r.mark("no other server hears the leader " + l.ID)
	}
	probes := r.probeReachable()
	time.Sleep(d)
	r.heal()
	probes.Wait()
}

// flap cuts and heals one server's link over and over.
func flap(r *runner, d time.Duration) {
	s := r.g.servers[r.rng.IntN(len(r.g.servers))]
	if r.rng.IntN(2) == 0 {
		s = r.leader()
	}
	period := time.Duration(300+r.rng.IntN(900)) * time.Millisecond
	r.flapping[s.ID] = true
	r.mark(fmt.Sprintf("flap %s's link every %s", s.ID, period))
	var probes []*sync.WaitGroup
	for end := time.Now().Add(d); time.Now().Before(end); {
		r.g.net.Cut([]string{s.Host.Name})
		probes = append(probes, r.probeReachable())
		time.Sleep(period)
		r.g.net.Heal()
		time.Sleep(period)
	}
	r.heal()
	for _, p := range probes {
		p.Wait()
	}
}

// slow makes the links of some hosts slow: netem delay where the kernel
// has it, else a thin rate-limited link.
func slow(r *runner, d time.Duration) {
	var names []string
	for _, s := range r.g.servers {
		if r.rng.IntN(3) != 0 {
			names = append(names, s.Host.Name)
		}
	}
	for _, w := range r.g.workers {
		if r.rng.IntN(2) == 0 {
			names = append(names, w.name)
		}
	}
	if len(names) == 0 {
		names = []string{r.leader().Host.Name}
	}
	kind, err := r.g.net.Slow(names...)
	if err != nil {
		r.g.t.Logf("nemesis slow skipped: %v", err)
		r.g.net.Heal()
		return
	}
	r.mark(fmt.Sprintf("slow links (%s) of %s", kind, strings.Join(names, ",")))
	probes := r.probeReachable()
	time.Sleep(d)
	r.heal()
	probes.Wait()
}

// pauseLeader freezes the leader (SIGSTOP) for longer than an election
// takes, sends it calls while it is frozen, then lets it go on (SIGCONT): a
// leader that was deposed meanwhile must not accept or answer as leader,
// which the history's checks see.
func pauseLeader(r *runner, d time.Duration) {
	l := r.leader()
	d = min(max(d, 2*time.Second), 7*time.Second) // past the election timeout (1s), inside the call bound
	if err := l.Pause(); err != nil {
		r.g.fatalf("pause %s: %v", l.ID, err)
	}
	r.paused[l.ID] = true
	r.mark("pause the leader " + l.ID)
	probes := r.probe(l)
	others := r.probeReachable()
	time.Sleep(d)
	if err := l.Resume(); err != nil {
		r.g.fatalf("resume %s: %v", l.ID, err)
	}
	delete(r.paused, l.ID)
	r.heal()
	probes.Wait()
	others.Wait()
}

// probeReachable probes, at the moment a fault begins, every running server
// the clients' host still reaches: a follower then forwards to a leader
// that may be gone, over a connection that may hang.
func (r *runner) probeReachable() *sync.WaitGroup {
	var all sync.WaitGroup
	for _, s := range r.g.servers {
		if !r.paused[s.ID] && r.g.net.Reaches(r.g.client.Name, s.Host.Name) {
			wg := r.probe(s)
			all.Go(wg.Wait)
		}
	}
	return &all
}

// probe sends a job read, a blob read and a blob put straight to one
// server (no failover), recorded in the history like every call: a put it
// acknowledges must be there at the end, a read it answers must be right.
func (r *runner) probe(s *proctest.Server) *sync.WaitGroup {
	cl := r.g.newClient(s)
	var wg sync.WaitGroup
	jobs, blobs := r.w.snapshot()
	if len(jobs) > 0 {
		if j := jobs[r.rng.IntN(len(jobs))]; j.id != "" {
			wg.Go(func() { r.w.statusOf(probeClient, cl, s.ID, j) })
		}
	}
	if len(blobs) > 0 {
		b := blobs[r.rng.IntN(len(blobs))]
		wg.Go(func() { r.w.getBlob(probeClient, cl, s.ID, b) })
	}
	data := make([]byte, 256)
	for i := range data {
		data[i] = byte(r.rng.Uint32())
	}
	wg.Go(func() { r.w.putBlob(probeClient, cl, s.ID, data) })
	return &wg
}

// probeClient and checkClient label calls of the nemesis and of the final
// checks in the history.
const (
	probeClient = 100
	checkClient = 101
)

// runner applies a schedule and records its steps in the history.
type runner struct {
	g        *grid
	h        *history
	w        *workload
	rng      *rand.Rand
	paused   map[string]bool
	flapping map[string]bool
}

func newRunner(g *grid, h *history, w *workload, seed int64) *runner {
	r := &runner{g: g, h: h, w: w, rng: rand.New(rand.NewPCG(uint64(seed), 0x6e656d)),
		paused: map[string]bool{}, flapping: map[string]bool{}}
	r.mark("start")
	return r
}

// leader is the leader every server agrees on.
func (r *runner) leader() *proctest.Server {
	r.g.t.Helper()
	return r.g.cluster.LeaderAmong(30*time.Second, r.g.servers...)
}

// heal ends the fault: the network is whole and every process runs.
func (r *runner) heal() {
	r.g.net.Heal()
	clear(r.flapping)
	r.g.t.Logf("%s: heal", r.h.now().Round(100*time.Millisecond))
	r.h.event(event{At: r.h.now(), What: "heal", Healthy: r.healthy(), Heal: true})
}

func (r *runner) mark(what string) {
	r.g.t.Logf("%s: %s", r.h.now().Round(100*time.Millisecond), what)
	r.h.event(event{At: r.h.now(), What: what, Healthy: r.healthy()})
}

// healthy says, for each worker, whether it reaches a server on the
// majority side now: one that, itself included, reaches a majority of
// the servers (paused and flapping ones count as unreachable).
func (r *runner) healthy() map[string]bool {
	up := func(name string) bool { return !r.paused[name] && !r.flapping[name] }
	majority := func(s *proctest.Server) bool {
		n := 0
		for _, o := range r.g.servers {
			if up(o.ID) && (o == s || r.g.net.Reaches(s.Host.Name, o.Host.Name)) {
				n++
			}
		}
		return n > len(r.g.servers)/2
	}
	out := map[string]bool{}
	for _, w := range r.g.workers {
		for _, s := range r.g.servers {
			if up(w.name) && up(s.ID) && majority(s) && r.g.net.Reaches(w.name, s.Host.Name) {
				out[w.name] = true
			}
		}
		if !out[w.name] {
			out[w.name] = false
		}
	}
	return out
}

// step is one fault of a schedule, and the calm after it.
type step struct {
	nemesis    nemesis
	hold, calm time.Duration
}

func (s step) String() string {
	return fmt.Sprintf("%s %s", s.nemesis.name, s.hold.Round(100*time.Millisecond))
}

// schedule draws the faults of a run from seed: the short one (for CI)
// is every nemesis once in a random order, the long one 40 faults drawn at
// random, each held for a time drawn from its range. After each, a calm of
// 5.5-6.5 s: longer than the progress bound, so that the checks see the
// grid recover from one fault before the next begins.
func schedule(seed int64, long bool, only ...string) []step {
	nemeses := pick(only)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x736368))
	between := func(r [2]time.Duration) time.Duration { return r[0] + time.Duration(rng.Int64N(int64(r[1]-r[0]))) }
	calm := [2]time.Duration{5500 * time.Millisecond, 6500 * time.Millisecond}
	var out []step
	if !long {
		for _, i := range rng.Perm(len(nemeses)) {
			out = append(out, step{nemeses[i], between(nemeses[i].short), between(calm)})
		}
		return out
	}
	for range 40 {
		n := nemeses[rng.IntN(len(nemeses))]
		out = append(out, step{n, between(n.long), between(calm)})
	}
	return out
}

// pick is the nemeses named (all of them if none are).
func pick(names []string) []nemesis {
	if len(names) == 0 {
		return nemeses
	}
	var out []nemesis
	for _, n := range nemeses {
		for _, name := range names {
			if n.name == name {
				out = append(out, n)
			}
		}
	}
	return out
}

func nemesisNames() string {
	var names []string
	for _, n := range nemeses {
		names = append(names, n.name)
	}
	return strings.Join(names, ",")
}

func describeSchedule(steps []step) string {
	var parts []string
	for _, s := range steps {
		parts = append(parts, s.String())
	}
	return strings.Join(parts, ", ")
}

// workerOrders gives each worker its servers in an order drawn from seed.
func workerOrders(seed int64) func(g *grid, i int) []*proctest.Server {
	return func(g *grid, i int) []*proctest.Server {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(1000+i)))
		out := append([]*proctest.Server(nil), g.servers...)
		rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
		return out
	}
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
