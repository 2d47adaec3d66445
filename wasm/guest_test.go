package wasm

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A Go-built guest reads the clock, sleeps, draws from math/rand/v2 and
// crypto/rand, does float math, ranges over a map and runs its GC. It must
// print the same bytes on every run: in-process with mmap or Go-heap
// memory, and in two different executor processes. (Another seed changes
// more than the random lines: the Go runtime's random choices change how
// often it reads the clock, and so the clock readings.)
func TestGoGuest_SameBytesOnEveryRunAndExecutor(t *testing.T) {
	hash := put(t, goGuest)
	req := func(seed uint64) *Request {
		return &Request{ModuleHash: hash, Name: "guest", Args: []string{"a"}, Seed: seed}
	}
	eng, _ := shared(t)
	heap := newEngine(t, EngineConfig{CacheDir: testCacheDir, HeapMemory: true})
	poolA, poolB := newPool(t, 1), newPool(t, 1)
	if a, b := poolA.pids()[0], poolB.pids()[0]; a == b {
		t.Fatalf("both pools run in process %d", a)
	}
	want := runGuest(t, eng, req(7))
	for name, r := range map[string]Engine{"engine again": eng, "heap memory": heap, "executor A": poolEngine{poolA}, "executor B": poolEngine{poolB}} {
		if got := runGuest(t, r, req(7)); !bytes.Equal(got, want) {
			t.Errorf("%s printed\n%s\nwant\n%s", name, got, want)
		}
	}
	// The clock starts at the fixed epoch (it moves a tick per reading).
	for _, line := range []string{"now=1704067200", `args=["guest" "a"]`} {
		if !bytes.Contains(want, []byte(line)) {
			t.Errorf("output lacks %q:\n%s", line, want)
		}
	}
	if lineOf(want, "gc=") == "gc=0" {
		t.Errorf("the guest's GC never ran, so it was not exercised:\n%s", want)
	}
	other := runGuest(t, poolEngine{poolA}, req(8))
	if lineOf(other, "rand=") == lineOf(want, "rand=") || lineOf(other, "crypto=") == lineOf(want, "crypto=") {
		t.Errorf("seed 8 gave the same random numbers as seed 7:\n%s", other)
	}
	if lineOf(other, "float=") != lineOf(want, "float=") || lineOf(other, "work=") != lineOf(want, "work=") {
		t.Errorf("seed 8 changed the computation:\n%s", other)
	}
}

// poolEngine runs requests through a Pool, so tables can mix both.
type poolEngine struct{ *Pool }

func (p poolEngine) Close(context.Context) error { return nil }

func runGuest(t *testing.T, e Engine, req *Request) []byte {
	t.Helper()
	res, err := e.Run(testCtx(t), req)
	if err != nil {
		t.Fatalf("guest: %v (stderr %q)", err, res.Stderr)
	}
	if string(res.Stderr) != "guest done\n" {
		t.Fatalf("guest stderr = %q", res.Stderr)
	}
	return res.Stdout
}

func lineOf(out []byte, prefix string) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
