package ledger

// Go maps never give back the memory of entries they once held: a map that
// grew to a million lease entries keeps its buckets after the leases end.
// So the ledger tracks the high-water mark of each map that can grow with
// one job (leases, jobs, request ids, references, blobs) and, once one holds
// less than a quarter of its mark, copies it into a new map of its size.
// A copy costs the entries left and happens only after three times as
// many went, so it is amortized over the deletions that called for it.
// Compaction changes no content, so it is no part of the replicated state.

// compactBelow is the smallest high-water mark worth compacting from.
const compactBelow = 4096

// mapMarks are the high-water marks of the ledger's large maps.
type mapMarks struct {
	jobs, byWorker, requests, refs, blobs, meta, manifests, order int
}

// compactMaps runs after every command: it raises the marks of maps that
// grew and compacts those that shrank enough.
func (l *Ledger) compactMaps() {
	m := &l.marks
	l.jobs = compacted(l.jobs, &m.jobs)
	l.byWorker = compacted(l.byWorker, &m.byWorker)
	l.requests = compacted(l.requests, &m.requests)
	l.refs = compacted(l.refs, &m.refs)
	l.blobs = compacted(l.blobs, &m.blobs)
	l.meta = compacted(l.meta, &m.meta)
	l.manifests = compacted(l.manifests, &m.manifests)
	l.order = compactedSlice(l.order, &m.order)
}

func compacted[K comparable, V any, M ~map[K]V](mp M, mark *int) M {
	n := len(mp)
	switch {
	case n > *mark:
		*mark = n
		return mp
	case *mark < compactBelow || n > *mark/4:
		return mp
	}
	*mark = n
	out := make(M, n)
	for k, v := range mp {
		out[k] = v
	}
	return out
}

// compactedSlice gives a slice whose length fell below a quarter of its
// capacity a backing array of its length.
func compactedSlice[T any](s []T, mark *int) []T {
	if cap(s) < compactBelow || len(s) > cap(s)/4 {
		return s
	}
	*mark = len(s)
	return append(make([]T, 0, len(s)), s...)
}
