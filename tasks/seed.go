package tasks

import (
	"fmt"
	"hash/fnv"
)

// Seed is the seed of the random numbers a task sees: fixed per task, so
// every worker (and every replica) of a task gives the same bytes. It is
// part of the determinism contract: changing it changes every result.
func Seed(job string, index int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", job, index)
	return h.Sum64()
}
