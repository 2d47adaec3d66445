//go:build !linux

package wasm

import "os"

// pipeCapacity is minPipeCapacity where the pipe's size cannot be asked.
func pipeCapacity(*os.File) int { return minPipeCapacity }
