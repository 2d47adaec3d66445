//go:build !linux

package wasm

// No memory box here: RLIMIT_DATA does not count mmap'd memory outside
// Linux (macOS), or does not exist (Windows). The engines' own caps and the
// structural limits still apply.

const noDataLimit = ^uint64(0)

func dataBytes() (uint64, bool) { return 0, false }

func setDataLimit(uint64) {}

func residentBytes(int) (uint64, bool) { return 0, false }
