// Package procstat reads what Linux's /proc says about the machine's CPU
// time, for benchmarks that account for every core-second of a run (the
// engine's parallel bench, the dev grid's parallel efficiency). It reads
// only; it knows nothing of the grid and imports nothing of ours, so any
// package's tests may use it (the sandbox's included: wasm must depend on
// nothing of ours outside its tests). Elsewhere than Linux it has nothing.
package procstat
