package wasm

import (
	"os"
	"strings"
	"testing"
)

// countPrimes returns how many primes are below n, by the sieve of
// Eratosthenes. wasm/primes_native_test.go holds a copy for the native side
// of the benchmark; a test keeps the two identical.
func countPrimes(n int) int {
	if n < 3 {
		return 0
	}
	composite := make([]bool, n)
	count := 0
	for i := 2; i < n; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j < n; j += i {
			composite[j] = true
		}
	}
	return count
}

// The native side of BenchmarkPrimesWasmVsNative must be the same code as
// the guest's kernel, or the ratio means nothing.
func TestPrimesKernel_NativeCopyIsTheGuestKernel(t *testing.T) {
	guest, err := os.ReadFile("testdata/primes/kernel.go")
	if err != nil {
		t.Fatal(err)
	}
	native, err := os.ReadFile("primes_native_test.go")
	if err != nil {
		t.Fatal(err)
	}
	g, n := funcText(string(guest), "countPrimes"), funcText(string(native), "countPrimes")
	if g == "" || g != n {
		t.Fatalf("countPrimes differs:\nguest:\n%s\nnative copy:\n%s", g, n)
	}
	if got := countPrimes(100); got != 25 {
		t.Fatalf("countPrimes(100) = %d, want 25", got)
	}
}

// funcText is a top-level function with its doc comment, up to its closing
// brace.
func funcText(src, name string) string {
	start := strings.Index(src, "\nfunc "+name+"(")
	if start < 0 {
		return ""
	}
	doc := strings.LastIndex(src[:start], "\n\n")
	end := strings.Index(src[start:], "\n}\n")
	if doc < 0 || end < 0 {
		return ""
	}
	return src[doc+2 : start+end+3]
}
