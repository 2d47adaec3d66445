//go:build !unix

package storage_test

import "time"

// processCPU is not measured here; MB/cpu_s is then not reported.
func processCPU() time.Duration { return 0 }
