package wasm

import "sync"

// compileCache keeps compiled modules in memory by key, for both engines.
// Each key is compiled once: callers for the same key wait for that one
// compilation. A failure that is not the module's fault (KindOf(err) == "":
// a missing file, ...) is not kept, so the next call tries again. Beyond
// maxCompiledModules the least recently used finished entries are dropped,
// release called on each value.
type compileCache[K comparable, V any] struct {
	mu      sync.Mutex
	clock   uint64 // orders entries by last use
	entries map[K]*cacheEntry[V]
	release func(V) // nil: the engine frees dropped values itself
}

type cacheEntry[V any] struct {
	done    chan struct{} // closed once val or err is set
	val     V
	err     error
	lastUse uint64
}

func newCompileCache[K comparable, V any](release func(V)) *compileCache[K, V] {
	return &compileCache[K, V]{entries: map[K]*cacheEntry[V]{}, release: release}
}

// get returns the value for key, calling compile on first use.
func (c *compileCache[K, V]) get(key K, compile func() (V, error)) (V, error) {
	c.mu.Lock()
	c.clock++
	if e, ok := c.entries[key]; ok {
		e.lastUse = c.clock
		c.mu.Unlock()
		<-e.done
		return e.val, e.err
	}
	e := &cacheEntry[V]{done: make(chan struct{}), lastUse: c.clock}
	c.entries[key] = e
	c.mu.Unlock()

	e.val, e.err = compile()
	close(e.done)
	c.mu.Lock()
	if e.err != nil && KindOf(e.err) == "" {
		delete(c.entries, key)
	}
	c.evictLocked()
	c.mu.Unlock()
	return e.val, e.err
}

// has reports whether key is compiled, or being compiled, here.
func (c *compileCache[K, V]) has(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// evictLocked drops the least recently used finished entries beyond the bound.
func (c *compileCache[K, V]) evictLocked() {
	for len(c.entries) > maxCompiledModules {
		var oldest K
		found := false
		for k, e := range c.entries {
			if isClosed(e.done) && (!found || e.lastUse < c.entries[oldest].lastUse) {
				oldest, found = k, true
			}
		}
		if !found {
			return
		}
		if c.release != nil && c.entries[oldest].err == nil {
			c.release(c.entries[oldest].val)
		}
		delete(c.entries, oldest)
	}
}

// reset forgets every entry without releasing it.
func (c *compileCache[K, V]) reset() {
	c.mu.Lock()
	c.entries = map[K]*cacheEntry[V]{}
	c.mu.Unlock()
}
