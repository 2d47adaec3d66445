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
	h := sha256.New()
	field := func(b []byte) {
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	field([]byte("peergrid task content v1"))
	field([]byte(s.ModuleHash))
	field([]byte(s.Name))
	args := s.TaskArgs(index)
	h.Write(binary.AppendUvarint(nil, uint64(len(args))))
	for _, a := range args {
		field([]byte(a))
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h.Write(binary.AppendUvarint(nil, uint64(len(keys))))
	for _, k := range keys {
		field([]byte(k))
		field([]byte(s.Env[k]))
	}
	input := ""
	if index < len(s.Inputs) {
		input = s.Inputs[index].Hash
	}
	field([]byte(input))
	h.Write(binary.AppendUvarint(nil, uint64(index)))
	h.Write(binary.AppendUvarint(nil, s.Seed))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Seed is the seed of the random numbers task index of s sees (crypto/rand
// and math/rand alike): the first 8 bytes of its ContentHash. So the same
// job file submitted twice gives the same numbers, and `seed = N` in the
// job file asks for another stream on purpose.
func Seed(s *JobSpec, index int) uint64 {
	sum := ContentHash(s, index)
	return binary.BigEndian.Uint64(sum[:8])
}
