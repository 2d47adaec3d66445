//go:build !unix

package runtimepolicy

import "time"

// processCPUTime cannot be read without getrusage: a server there keeps
// Go's default GOMAXPROCS.
func processCPUTime() (time.Duration, bool) { return 0, false }
