//go:build !race && linux

package wasm

// wakeupsAllowance scales maxWakeupsPerLongTask (see the race build's).
const wakeupsAllowance = 1
