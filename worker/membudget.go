package worker

import (
	"fmt"
	"sync"
)

// memBudget bounds the memory caps of the tasks running at once
// (max_memory): a task waits until its cap fits beside the running ones.
// It counts caps, not what tasks really touch, so the bound holds whatever
// they do.
type memBudget struct {
	mu      sync.Mutex
	limit   int64 // 0: none
	used    int64
	changed chan struct{}
}

func newMemBudget() *memBudget { return &memBudget{changed: make(chan struct{})} }

func (b *memBudget) setLimit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = n
	b.wakeLocked()
}

func (b *memBudget) wakeLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// errOverMemory: a task whose cap alone is over max_memory.
type errOverMemory struct{ need, limit int64 }

func (e errOverMemory) Error() string {
	return fmt.Sprintf("the task's memory cap (%d bytes) is over this volunteer's max_memory (%d bytes)", e.need, e.limit)
}

// acquire takes n bytes, waiting while they do not fit (or until stop
// closes: false, nil). A cap over the whole limit is an error at once.
func (b *memBudget) acquire(n int64, stop <-chan struct{}) (bool, error) {
	for {
		b.mu.Lock()
		if limit := b.limit; limit > 0 && n > limit {
			b.mu.Unlock()
			return false, errOverMemory{n, limit}
		}
		if b.limit == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return true, nil
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			return false, nil
		}
	}
}

func (b *memBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.wakeLocked()
}
