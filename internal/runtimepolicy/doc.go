// Package runtimepolicy owns the Go runtime settings a peergrid process
// chooses for itself from its role, where Go's defaults serve the role
// badly: today the number of Ps (GOMAXPROCS) of a process whose worker
// donates CPUs to executors, and of a lone server, which follows its load.
//
// It is one place for both `peergrid` and the benchmarks that measure what
// a user of it meets, so both run the very same rule. A user's own
// environment (GOMAXPROCS) always wins. It must not know the grid: callers
// say how many CPUs they donate, or that they serve.
package runtimepolicy
