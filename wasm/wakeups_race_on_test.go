//go:build race && linux

package wasm

// wakeupsAllowance scales maxWakeupsPerLongTask: under the race detector
// the runtime wakes more (its own goroutines, a slower GC).
const wakeupsAllowance = 2
