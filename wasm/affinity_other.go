//go:build !linux

package wasm

// allowedCPUs: executors are pinned on Linux only.
func allowedCPUs() ([]int, error) { return nil, nil }

func startOnCPU(_ int, start func() error) error { return start() }
