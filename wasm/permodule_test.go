package wasm

import "testing"

// TestPerModule_ForgetsTheFirstSeenPastItsBound: state is kept per module,
// the same each time it is asked for, and the module first seen is
// forgotten when one more would pass the bound.
func TestPerModule_ForgetsTheFirstSeenPastItsBound(t *testing.T) {
	p := newPerModule[*int](2)
	made := 0
	fresh := func() *int { made++; v := made; return &v }
	a := p.getOrAdd("a", fresh)
	if again := p.getOrAdd("a", fresh); again != a || made != 1 {
		t.Fatalf("asked twice for a: made %d, same %v", made, again == a)
	}
	p.getOrAdd("b", fresh)
	p.getOrAdd("c", fresh)
	if _, ok := p.get("a"); ok {
		t.Fatal("a, the first seen, is remembered past the bound of 2")
	}
	for _, m := range []string{"b", "c"} {
		if _, ok := p.get(m); !ok {
			t.Fatalf("%s forgotten while within the bound", m)
		}
	}
}
