package ledger

// chunkSize is how many tasks share one copy-on-write chunk; a snapshot
// record holds one chunk.
const chunkSize = 1024

// taskTable holds a job's tasks in fixed-size chunks that snapshots share
// copy-on-write. A chunk stamped with an older generation than the ledger's
// may be held by a snapshot still streaming, so mut copies it first.
type taskTable struct {
	n      int
	chunks []*taskChunk
	gen    *uint64 // the ledger's snapshot generation
}

type taskChunk struct {
	gen   uint64
	tasks []task
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
	c := tt.chunks[i/chunkSize]
	if c.gen != *tt.gen {
		c = &taskChunk{gen: *tt.gen, tasks: append([]task(nil), c.tasks...)}
		tt.chunks[i/chunkSize] = c
	}
	return &c.tasks[i%chunkSize]
}

// share is a view of the table for a snapshot: chunk pointers only.
func (tt *taskTable) share() taskTable {
	return taskTable{n: tt.n, chunks: append([]*taskChunk(nil), tt.chunks...), gen: tt.gen}
}

// appendTask adds a task at the end (restoring a snapshot).
func (tt *taskTable) appendTask(t task) {
	if tt.n%chunkSize == 0 {
		tt.chunks = append(tt.chunks, &taskChunk{gen: *tt.gen, tasks: make([]task, 0, chunkSize)})
	}
	last := tt.chunks[len(tt.chunks)-1]
	last.tasks = append(last.tasks, t)
	tt.n++
}

// records is the chunk's tasks in their snapshot form, in buf's storage.
func (c *taskChunk) records(buf []taskRecord) []taskRecord {
	buf = buf[:0]
	for i := range c.tasks {
		buf = append(buf, c.tasks[i].record())
	}
	return buf
}
