//go:build !unix

package wasm

import "errors"

// canStop: Windows has no SIGSTOP; pausing there only holds back new tasks
// (the worker takes no leases), and CPU limits are not enforced.
const canStop = false

func stopPID(pid int) error { return errors.ErrUnsupported }
func contPID(pid int) error { return errors.ErrUnsupported }
