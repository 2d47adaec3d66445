//go:build !unix

package wasm

import "time"

// selfCPUTime is not measured here: Result.CPUTime stays 0.
func selfCPUTime() time.Duration { return 0 }
