package tasks

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// ContentHash names what a task is: its module, its argv as the task sees
// it (the job's name, which is argv[0], and the expanded args), its env, its
// input's hash, its index and the job's seed. Two tasks with the same
// content hash give the same bytes on every run, every worker and every
// engine; the job's id, its limits, priority and engine are not part of it.
//
// It is part of the determinism contract: changing the encoding changes
// every task's random numbers, so it is versioned by its first field.
func ContentHash(s *JobSpec, index int) [32]byte {
	// One buffer hashed once: the leader hashes every task of a job it
	// grants and the ledger every task a submit looks up in the result
	// cache, so no allocation per field.
	buf := make([]byte, 0, 256)
	uvarint := func(n int) { buf = binary.AppendUvarint(buf, uint64(n)) }
	field := func(b string) {
		uvarint(len(b))
		buf = append(buf, b...)
	}
	field("peergrid task content v1")
	field(s.ModuleHash)
	field(s.Name)
	args := s.TaskArgs(index)
	uvarint(len(args))
	for _, a := range args {
		field(a)
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	uvarint(len(keys))
	for _, k := range keys {
		field(k)
		field(s.Env[k])
	}
	input := ""
	if index < len(s.Inputs) {
		input = s.Inputs[index].Hash
	}
	field(input)
	uvarint(index)
	buf = binary.AppendUvarint(buf, s.Seed)
	return sha256.Sum256(buf)
}

// Seed is the seed of the random numbers task index of s sees (crypto/rand
// and math/rand alike): the first 8 bytes of its ContentHash. So the same
// job file submitted twice gives the same numbers, and `seed = N` in the
// job file asks for another stream on purpose.
func Seed(s *JobSpec, index int) uint64 {
	sum := ContentHash(s, index)
	return binary.BigEndian.Uint64(sum[:8])
}
