package ledger

// chunkSize is how many tasks share one copy-on-write chunk; a snapshot
// record holds one chunk.
const chunkSize = 1024

// maxArenaOutput is the longest stdout a chunk's arena takes; a longer one
// (inline stdout may reach storage.MaxInline) is its own allocation in the
// task's rare fields, so an arena stays far below the 4 GiB its 32-bit
// offsets reach: at most chunkSize × 64 KiB live, as much again dead.
const maxArenaOutput = 64 << 10

// compactArenaFrom is how many dead bytes an arena may hold before it is
// compacted (when they are also more than half of it).
const compactArenaFrom = 4 << 10

// taskTable holds a job's tasks in fixed-size chunks that snapshots share
// copy-on-write. A chunk stamped with an older generation than the ledger's
// may be held by a snapshot still streaming, so mut copies it first.
type taskTable struct {
	n      int
	chunks []*taskChunk
	gen    *uint64 // the ledger's snapshot generation
}

// taskChunk is up to chunkSize tasks and their inline stdouts. The arena
// out only grows, by append, while the chunk is Apply's: a copy for a new
// generation gets out capped at its length, so its next append moves it
// and the bytes a snapshot's chunk reads are never written again.
type taskChunk struct {
	gen   uint64
	tasks []task
	out   []byte
	dead  int // bytes of out no task points to any more (replaced outputs)
}

// outSpan is where a task's stdout is in its chunk's arena; zero for none.
type outSpan struct {
	off, n uint32
}

func newTaskTable(n int, gen *uint64) taskTable {
	tt := taskTable{n: n, gen: gen}
	for at := 0; at < n; at += chunkSize {
		// The zero task is queued (taskrecord.go).
		tt.chunks = append(tt.chunks, &taskChunk{gen: *gen, tasks: make([]task, min(chunkSize, n-at))})
	}
	return tt
}

func (tt *taskTable) len() int { return tt.n }

// at is task i for reading; callers must not change it.
func (tt *taskTable) at(i int) *task { return &tt.chunks[i/chunkSize].tasks[i%chunkSize] }

// mut is task i for Apply to change, copying its chunk if a snapshot may share it.
func (tt *taskTable) mut(i int) *task {
	return &tt.mutChunk(i).tasks[i%chunkSize]
}

func (tt *taskTable) mutChunk(i int) *taskChunk {
	c := tt.chunks[i/chunkSize]
	if c.gen != *tt.gen {
		c = &taskChunk{gen: *tt.gen, tasks: append([]task(nil), c.tasks...), out: c.out[:len(c.out):len(c.out)], dead: c.dead}
		tt.chunks[i/chunkSize] = c
	}
	return c
}

// stdout is task i's inline stdout (nil for none); callers must not change it.
func (tt *taskTable) stdout(i int) []byte {
	c := tt.chunks[i/chunkSize]
	return c.stdout(&c.tasks[i%chunkSize])
}

// setOutput records the outputs of task i's accepted result (or clears
// them: all zero) and returns the task, as mut does.
func (tt *taskTable) setOutput(i int, stdout, stderr []byte, stdoutRef, engine string) *task {
	c := tt.mutChunk(i)
	t := &c.tasks[i%chunkSize]
	c.setStdout(t, stdout)
	t.setOutputBesideStdout(stderr, stdoutRef, engine)
	return t
}

// share is a view of the table for a snapshot: chunk pointers only.
func (tt *taskTable) share() taskTable {
	return taskTable{n: tt.n, chunks: append([]*taskChunk(nil), tt.chunks...), gen: tt.gen}
}

// appendTask adds a task with its inline stdout at the end (restoring a
// snapshot).
func (tt *taskTable) appendTask(t task, stdout []byte) {
	if tt.n%chunkSize == 0 {
		tt.chunks = append(tt.chunks, &taskChunk{gen: *tt.gen, tasks: make([]task, 0, chunkSize)})
	}
	last := tt.chunks[len(tt.chunks)-1]
	last.tasks = append(last.tasks, t)
	last.setStdout(&last.tasks[len(last.tasks)-1], stdout)
	tt.n++
}

// record is task i in its snapshot form.
func (tt *taskTable) record(i int) taskRecord {
	return tt.at(i).record(tt.stdout(i))
}

// records is the chunk's tasks in their snapshot form, in buf's storage.
func (c *taskChunk) records(buf []taskRecord) []taskRecord {
	buf = buf[:0]
	for i := range c.tasks {
		t := &c.tasks[i]
		buf = append(buf, t.record(c.stdout(t)))
	}
	return buf
}

func (c *taskChunk) stdout(t *task) []byte {
	if t.rare != nil && t.rare.stdout != nil {
		return t.rare.stdout
	}
	if t.out.n == 0 {
		return nil
	}
	end := t.out.off + t.out.n
	return c.out[t.out.off:end:end]
}

// setStdout makes p task t's inline stdout (t is one of c's tasks, and c
// Apply's own). The arena keeps a copy; an empty p is none, as a snapshot
// writes and reads it.
func (c *taskChunk) setStdout(t *task, p []byte) {
	c.dead += int(t.out.n)
	t.out = outSpan{}
	t.setLongStdout(nil)
	switch {
	case len(p) == 0:
	case len(p) > maxArenaOutput:
		t.setLongStdout(p)
	default:
		c.compactArena()
		t.out = outSpan{off: uint32(len(c.out)), n: uint32(len(p))}
		c.out = append(c.out, p...)
	}
}

// compactArena copies the live outputs into a new arena once most of it is
// dead: a task's stdout is replaced only when an attempt is retried or a
// result discarded, so this is rare, and it keeps an arena under twice its
// live bytes (plus compactArenaFrom).
func (c *taskChunk) compactArena() {
	if c.dead < compactArenaFrom || c.dead <= len(c.out)/2 {
		return
	}
	out := make([]byte, 0, len(c.out)-c.dead)
	for i := range c.tasks {
		t := &c.tasks[i]
		if t.out.n == 0 {
			continue
		}
		at := len(out)
		out = append(out, c.out[t.out.off:t.out.off+t.out.n]...)
		t.out.off = uint32(at)
	}
	c.out, c.dead = out, 0
}
