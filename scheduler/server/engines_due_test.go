package server

import (
	"testing"
	"time"
)

// TestGridEngines_OneEngineGridReadsPeersOncePerTTL: the workers' engines
// are a scan of every peer. A grid that offers one engine has nothing to
// choose, and must not read them again on every report until engineSetTTL
// has passed (it did: half the leader's CPU at 10,000 workers).
func TestGridEngines_OneEngineGridReadsPeersOncePerTTL(t *testing.T) {
	g := newGridEngines()
	t0 := time.Unix(1_000_000, 0)
	if due, idle := g.due(t0); !due || idle {
		t.Fatalf("never read: due=%v idle=%v, want due", due, idle)
	}
	if c := g.chooserFor([]string{"wazero"}, t0); c != nil {
		t.Fatal("a chooser for one engine")
	}
	if due, idle := g.due(t0.Add(engineSetTTL / 2)); due || !idle {
		t.Fatalf("one engine, read %v ago: due=%v idle=%v, want idle", engineSetTTL/2, due, idle)
	}
	if due, _ := g.due(t0.Add(engineSetTTL)); !due {
		t.Fatal("not due again after engineSetTTL: a second engine would never be seen")
	}
	g.chooserFor([]string{}, t0) // no alive worker offers any: read, and idle too
	if due, idle := g.due(t0.Add(time.Second)); due || !idle {
		t.Fatalf("no engines, read 1s ago: due=%v idle=%v, want idle", due, idle)
	}
	if c := g.chooserFor([]string{"wasmtime", "wazero"}, t0); c == nil {
		t.Fatal("no chooser for two engines")
	}
	if due, idle := g.due(t0.Add(time.Second)); due || idle {
		t.Fatalf("two engines, read 1s ago: due=%v idle=%v, want neither", due, idle)
	}
}
