// Package examples owns peergrid's example jobs: the task programs' sources,
// their job files and input files, all embedded in the binary so that
// `peergrid demo` works from any directory, and native Go checks of their
// results.
//
// The Go programs (src/<name>/main.go: primes, mandelbrot, wordcount, pi)
// use only the standard library; they are built for GOOS=wasip1 on first use
// with internal/gowasm, which caches by source hash. tiny (tiny/tiny.c) is C,
// built once with clang by tiny/build.sh; its module is committed, so no C
// toolchain is needed at run or test time.
//
// Verify checks results against values it computes itself, in native Go with
// code written apart from the guests (a whole-range sieve against the
// guest's segmented one, a separate word scanner); it never runs a module.
// Where the values are floating point (mandelbrot) both sides use the same
// explicitly rounded float64 arithmetic, so results compare byte for byte.
//
// It must not run WebAssembly, know how jobs are scheduled or reach the
// network: it hands out files, bytes and checks. Of peergrid's packages it
// imports only tasks and internal/gowasm.
package examples
