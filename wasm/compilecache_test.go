package wasm

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestCompileCache_CompilesOnceKeepsModuleErrorsRetriesOthers(t *testing.T) {
	c := newCompileCache[string, int](nil)
	calls := 0
	var mu sync.Mutex
	compile := func() (int, error) { mu.Lock(); calls++; mu.Unlock(); return 7, nil }
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.get("a", compile) }()
	}
	wg.Wait()
	if v, _ := c.get("a", compile); v != 7 || calls != 1 {
		t.Fatalf("value %d after %d compilations, want 7 after 1", v, calls)
	}
	bad := &TaskError{Kind: KindInvalidModule, Msg: "not a module"}
	c.get("bad", func() (int, error) { return 0, bad })
	if _, err := c.get("bad", func() (int, error) { return 1, nil }); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("a module's own fault should be kept: %v", err)
	}
	c.get("gone", func() (int, error) { return 0, errors.New("file missing") })
	if v, err := c.get("gone", func() (int, error) { return 3, nil }); err != nil || v != 3 {
		t.Fatalf("an error not the module's fault should be retried: %d %v", v, err)
	}
}

func TestCompileCache_EvictsLeastRecentlyUsedAndReleasesIt(t *testing.T) {
	var released []int
	c := newCompileCache[string, int](func(v int) { released = append(released, v) })
	for i := 0; i < maxCompiledModules; i++ {
		c.get(fmt.Sprint(i), func() (int, error) { return i, nil })
	}
	c.get("0", nil) // used again: now the most recent
	c.get("new", func() (int, error) { return -1, nil })
	if len(released) != 1 || released[0] != 1 {
		t.Fatalf("released %v, want only the least recently used (1)", released)
	}
	if len(c.entries) != maxCompiledModules {
		t.Fatalf("%d entries, want %d", len(c.entries), maxCompiledModules)
	}
}
