//go:build !linux

package wasm

import "time"

// processCPUTime is not read here: the CPU limit's duty cycle runs open
// loop (each busy executor runs its share of every period).
func processCPUTime(pid int) (time.Duration, bool) { return 0, false }
