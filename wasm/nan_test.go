package wasm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// The limits of the determinism promise for NaNs, measured: WebAssembly
// fixes the bits of neg, abs and copysign of a NaN, and says only "some
// NaN" (sign and payload open) for arithmetic on or producing one. On one
// machine every engine must still give the same bits (the same CPU makes
// the same NaN); the test prints what each case gives, so a difference
// between architectures can be read off two runs.
func TestEngines_NaNBitsAreTheSameOnEveryEngine(t *testing.T) {
	hash := put(t, wasmtest.NaNProbe())
	_, pool := shared(t)
	var first []uint64
	var firstEngine string
	for _, engine := range AvailableEngines() {
		res, err := pool.Run(testCtx(t), &Request{ModuleHash: hash, Engine: engine})
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		bits := nanBits(t, res.Stdout)
		if first == nil {
			first, firstEngine = bits, engine
			t.Logf("NaN bits on %s:\n%s", engine, describeNaNs(bits))
			continue
		}
		for i, b := range bits {
			if b != first[i] {
				t.Errorf("%s: %s = %#016x, %s gave %#016x", engine, wasmtest.NaNCases[i], b, firstEngine, first[i])
			}
		}
	}
	// What the README says of this architecture: x86-64 makes NaNs with
	// the sign bit set, arm64 without.
	if want, ok := map[string]uint64{"amd64": 0xfff8_0000_0000_0000, "arm64": 0x7ff8_0000_0000_0000}[runtime.GOARCH]; ok {
		if got := first[caseIndex("f64 0/0")]; got != want {
			t.Errorf("on %s 0/0 = %#016x, the README says %#016x", runtime.GOARCH, got, want)
		}
	}
	// What the spec fixes, whatever the engine: neg flips the sign of
	// payload A, copysign(A, -1) sets it.
	const payA = 0x7ff8_0000_dead_beef
	for name, want := range map[string]uint64{"f64 neg(payload)": payA | 1<<63, "f64 copysign(payload,-1)": payA | 1<<63} {
		if got := first[caseIndex(name)]; got != want {
			t.Errorf("%s = %#016x, want %#016x", name, got, uint64(want))
		}
	}
}

func nanBits(t *testing.T, out []byte) []uint64 {
	t.Helper()
	if len(out) != 8*len(wasmtest.NaNCases) {
		t.Fatalf("probe wrote %d bytes, want %d", len(out), 8*len(wasmtest.NaNCases))
	}
	bits := make([]uint64, len(wasmtest.NaNCases))
	for i := range bits {
		bits[i] = binary.LittleEndian.Uint64(out[8*i:])
	}
	return bits
}

func caseIndex(name string) int {
	for i, c := range wasmtest.NaNCases {
		if c == name {
			return i
		}
	}
	panic("no NaN case " + name)
}

func describeNaNs(bits []uint64) string {
	var b strings.Builder
	for i, v := range bits {
		fmt.Fprintf(&b, "  %-28s %#016x\n", wasmtest.NaNCases[i], v)
	}
	return b.String()
}
