package wasm

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// allowedCPUs are the CPUs this process may run on (its affinity mask,
// which a container's cpuset narrows), in order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for cpu := 0; len(cpus) < set.Count(); cpu++ {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// startOnCPU runs start, which starts a child process, from a thread bound
// to cpu alone, so that the child and every thread it makes are bound to
// it (a child inherits the affinity of the thread that forks it, and its
// threads that of their creator). It runs on a goroutine of its own whose
// thread gets its mask back after, or, if that fails, ends with it.
func startOnCPU(cpu int, start func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var was, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &was); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("executor affinity: %w", err)
			return
		}
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("executor affinity: CPU %d: %w", cpu, err)
			return
		}
		err := start()
		if unix.SchedSetaffinity(0, &was) == nil {
			runtime.UnlockOSThread()
		} // else never unlocked: the thread ends with this goroutine
		done <- err
	}()
	return <-done
}
