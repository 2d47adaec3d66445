package nemesis

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// opLimit bounds one call, so a hung call ends the run instead of the test
// timeout; the checker wants far less (callBound).
const opLimit = 30 * time.Second

// workload is clients on the client host calling the grid at random:
// submitting echo jobs, reading their status and results, cancelling some,
// and putting and getting small blobs. Every call goes into the history.
type workload struct {
	g *grid
	h *history

	mu    sync.Mutex
	jobs  []*jobRef
	blobs []*blobRef
	wg    sync.WaitGroup
}

type jobRef struct {
	id, name string // id is "" while (or if) the submit's answer was lost
	tasks    int
	submitOp int // the submit in the history
}

type blobRef struct {
	hash  string
	data  []byte
	putOp int
	acked bool // the put returned ok
}

// start runs n clients until ctx ends, each talking to every server in an
// order drawn from seed. Wait waits for their last calls.
func (w *workload) start(ctx context.Context, n int, seed int64) {
	for c := range n {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(c)))
		servers := append([]*proctest.Server(nil), w.g.servers...)
		rng.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
		cl := &caller{w: w, id: c, cl: w.g.newClient(servers...), via: serverIDs(servers), rng: rng}
		w.wg.Go(func() { cl.loop(ctx) })
	}
}

func (w *workload) wait() { w.wg.Wait() }

func serverIDs(servers []*proctest.Server) string {
	var ids []string
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, ",")
}

// caller is one client of the workload.
type caller struct {
	w    *workload
	id   int
	cl   *gridClient
	via  string
	rng  *rand.Rand
	jobs int
}

func (c *caller) loop(ctx context.Context) {
	for ctx.Err() == nil {
		switch r := c.rng.IntN(100); {
		case r < 15:
			c.submit()
		case r < 40:
			c.status(c.pickJob())
		case r < 55:
			c.results(c.pickJob())
		case r < 60:
			c.cancel(c.pickJob())
		case r < 75:
			c.put()
		default:
			c.get()
		}
		select { // the pace of a client, not a wait for state
		case <-ctx.Done():
		case <-time.After(time.Duration(20+c.rng.IntN(130)) * time.Millisecond):
		}
	}
}

func (c *caller) begin(kind, key string) op {
	return op{Client: c.id, Kind: kind, Key: key, Via: c.via, Invoke: c.w.h.now()}
}

func (c *caller) submit() {
	c.jobs++
	name := fmt.Sprintf("c%d-%d", c.id, c.jobs)
	n := 20 + c.rng.IntN(180)
	o := c.begin(opSubmit, "")
	o.Name = name
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	id, err := c.cl.Submit(ctx, c.w.g.echoSpec(name, n))
	o.finish(c.w.h, err)
	if err == nil {
		o.Key = id
	}
	c.w.addJob(&jobRef{id: o.Key, name: name, tasks: n, submitOp: c.w.h.add(o)})
}

func (c *caller) status(j *jobRef) {
	if j == nil {
		return
	}
	c.w.statusOf(c.id, c.cl, c.via, j)
}

func (w *workload) statusOf(client int, cl *gridClient, via string, j *jobRef) op {
	o := op{Client: client, Kind: opStatus, Key: j.id, Via: via, Invoke: w.h.now()}
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	s, err := cl.JobSummary(ctx, j.id)
	o.finish(w.h, err)
	if err == nil {
		o.State, o.Tasks, o.Done, o.Failed = s.State, s.Tasks, s.Done, s.Failed
	}
	w.h.add(o)
	return o
}

func (c *caller) results(j *jobRef) {
	if j == nil {
		return
	}
	c.w.resultsOf(c.id, c.cl, c.via, j)
}

// resultsOf reads a job's results, checking every done task's bytes.
func (w *workload) resultsOf(client int, cl *gridClient, via string, j *jobRef) []api.TaskResult {
	o := op{Client: client, Kind: opResults, Key: j.id, Via: via, Invoke: w.h.now()}
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	rs, err := cl.Results(ctx, j.id)
	o.finish(w.h, err)
	if err == nil {
		o.Tasks = len(rs)
		for i, r := range rs {
			switch {
			case r.Index != i && o.Wrong == "":
				o.Wrong = fmt.Sprintf("result %d has index %d", i, r.Index)
			case r.State == tasks.TaskDone:
				o.Done++
				if want := echoOf(j.name, i); string(r.Stdout) != want && o.Wrong == "" {
					o.Wrong = fmt.Sprintf("task %d wrote %q, want %q", i, r.Stdout, want)
				}
			case r.State == tasks.TaskFailed:
				o.Failed++
			}
		}
	}
	w.h.add(o)
	return rs
}

func (c *caller) cancel(j *jobRef) {
	if j == nil {
		return
	}
	o := c.begin(opCancel, j.id)
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	o.finish(c.w.h, c.cl.Cancel(ctx, j.id))
	c.w.h.add(o)
}

func (c *caller) put() {
	data := make([]byte, 64+c.rng.IntN(4032))
	for i := range data {
		data[i] = byte(c.rng.Uint32())
	}
	c.w.putBlob(c.id, c.cl, c.via, data)
}

// putBlob puts a small (inline) blob and remembers it for later reads.
func (w *workload) putBlob(client int, cl *gridClient, via string, data []byte) {
	b := &blobRef{hash: storage.Hash(data), data: data}
	o := op{Client: client, Kind: opPut, Key: b.hash, Via: via, Invoke: w.h.now()}
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	o.finish(w.h, cl.PutBlob(ctx, b.hash, data))
	b.putOp = w.h.add(o)
	b.acked = o.Outcome == outOK
	w.mu.Lock()
	w.blobs = append(w.blobs, b)
	w.mu.Unlock()
}

func (c *caller) get() {
	b := c.pickBlob()
	if b == nil || c.rng.IntN(10) == 0 { // now and then a blob nobody put
		never := make([]byte, 32)
		for i := range never {
			never[i] = byte(c.rng.Uint32())
		}
		b = &blobRef{hash: storage.Hash(never), data: never}
	}
	c.w.getBlob(c.id, c.cl, c.via, b)
}

// getBlob reads a blob, checking its bytes.
func (w *workload) getBlob(client int, cl *gridClient, via string, b *blobRef) op {
	o := op{Client: client, Kind: opGet, Key: b.hash, Via: via, Invoke: w.h.now()}
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	got, err := cl.GetBlob(ctx, b.hash)
	o.finish(w.h, err)
	if err == nil && !bytes.Equal(got, b.data) {
		o.Wrong = fmt.Sprintf("got %d bytes (hash %s), want the %d put", len(got), storage.Hash(got), len(b.data))
	}
	w.h.add(o)
	return o
}

func (w *workload) addJob(j *jobRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jobs = append(w.jobs, j)
}

// pickJob is a random job whose id is known, favouring recent ones.
func (c *caller) pickJob() *jobRef {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	var known []*jobRef
	for _, j := range c.w.jobs {
		if j.id != "" {
			known = append(known, j)
		}
	}
	if len(known) == 0 {
		return nil
	}
	if c.rng.IntN(2) == 0 {
		return known[len(known)-1-c.rng.IntN(min(len(known), 5))]
	}
	return known[c.rng.IntN(len(known))]
}

func (c *caller) pickBlob() *blobRef {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if len(c.w.blobs) == 0 {
		return nil
	}
	return c.w.blobs[c.rng.IntN(len(c.w.blobs))]
}

// snapshot copies the jobs and blobs the workload knows of.
func (w *workload) snapshot() ([]*jobRef, []*blobRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*jobRef(nil), w.jobs...), append([]*blobRef(nil), w.blobs...)
}
