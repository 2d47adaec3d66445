//go:build cgo && (linux || darwin) && (amd64 || arm64)

package wasm

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// A cache entry's lock is held by one taker at a time: one that will not
// wait is told errCompiling, one that waits gets it when it is let go.
func TestLockCacheEntry_OneHolderTheOthersWaitOrAreTold(t *testing.T) {
	path := t.TempDir() + "/code/entry"
	unlock, err := lockCacheEntry(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockCacheEntry(path, false); !errors.Is(err, errCompiling) {
		t.Fatalf("a second taker that will not wait: %v, want errCompiling", err)
	}
	got := make(chan func())
	go func() {
		u, err := lockCacheEntry(path, true)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	unlock()
	select {
	case u := <-got:
		if _, err := lockCacheEntry(path, false); !errors.Is(err, errCompiling) {
			t.Fatalf("while the waiter holds it: %v, want errCompiling", err)
		}
		u()
	case <-time.After(time.Minute):
		t.Fatal("the waiting taker did not get the lock once it was let go")
	}
	u, err := lockCacheEntry(path, false)
	if err != nil {
		t.Fatalf("once free: %v", err)
	}
	u()
}

// Two executors (here two engines) that share a disk cache and get a
// module's first task at once compile it once: the other waits and loads
// what the first wrote. Each compiled it for itself before.
func TestWasmtime_ExecutorsSharingACacheCompileAModuleOnce(t *testing.T) {
	hash := put(t, goGuest)
	cache := t.TempDir()
	engines := []*wasmtimeEngine{newTestWasmtime(t, cache), newTestWasmtime(t, cache)}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.module(hash, modeGuarded); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := engines[0].compiles.Load() + engines[1].compiles.Load(); n != 1 {
		t.Fatalf("%d compiles of one module by two engines sharing a cache, want 1", n)
	}
}

// While another executor compiles a module's checked code, a task that
// the memory-mode chooser sends to it runs on guarded code instead of
// waiting or compiling it a second time; once it is in the cache, checked
// code runs.
func TestWasmtime_CheckedCodeBeingCompiledElsewhereRunsGuardedMeanwhile(t *testing.T) {
	modules := ModuleDir(t.TempDir())
	hash, err := modules.Put(goGuest)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestWasmtimeIn(t, t.TempDir(), modules)
	req := &Request{ModuleHash: hash}
	guarded, err := e.module(hash, modeGuarded)
	if err != nil {
		t.Fatal(err)
	}
	checked := modeChecked
	e.modes.override = &checked
	unlock, err := lockCacheEntry(e.cachePath(e.codes[modeChecked], guarded.sum), true) // the other executor
	if err != nil {
		t.Fatal(err)
	}
	// The module's file goes: finding the lock taken must not read and
	// rewrite the module again for each task (the guarded code is here).
	if err := os.Remove(modules.Path(hash)); err != nil {
		t.Fatal(err)
	}
	mustRun(t, e, req)
	mustRun(t, e, req)
	if runs := e.modes.runs(hash).seen; runs[modeGuarded] != 2 || runs[modeChecked] != 0 {
		t.Fatalf("runs by mode %v while the checked code was being compiled elsewhere, want one guarded", runs)
	}
	if e.compiles.Load() != 1 {
		t.Fatalf("%d compiles, want the guarded one only", e.compiles.Load())
	}
	unlock()
	if _, err := modules.Put(goGuest); err != nil { // back for the checked compile
		t.Fatal(err)
	}
	mustRun(t, e, req)
	if runs := e.modes.runs(hash).seen; runs[modeChecked] != 1 {
		t.Fatalf("runs by mode %v once the lock was let go, want a checked one", runs)
	}
	if _, err := os.Stat(e.cachePath(e.codes[modeChecked], guarded.sum)); err != nil {
		t.Fatalf("checked code not in the cache: %v", err)
	}
}

func newTestWasmtime(t *testing.T, cache string) *wasmtimeEngine {
	t.Helper()
	return newTestWasmtimeIn(t, cache, testModules)
}

func newTestWasmtimeIn(t *testing.T, cache string, modules ModuleDir) *wasmtimeEngine {
	t.Helper()
	eng, err := newWasmtime(context.Background(), EngineConfig{CacheDir: cache, ModuleDir: modules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng.(*wasmtimeEngine)
}
