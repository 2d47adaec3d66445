package storagetest

import (
	"bytes"
	"io"
	"math/rand/v2"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// RandomBytes returns n bytes from a PRNG seeded with seed.
func RandomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = NewPRNGReader(seed, int64(n)).Read(b)
	return b
}

// PRNGReader yields a deterministic stream of n pseudo-random bytes without
// holding them: a 1 GiB blob for a benchmark costs a few bytes of memory.
type PRNGReader struct {
	rng  *rand.ChaCha8
	left int64
}

// NewPRNGReader returns a reader of n bytes from a ChaCha8 stream seeded with seed.
func NewPRNGReader(seed uint64, n int64) *PRNGReader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return &PRNGReader{rng: rand.NewChaCha8(key), left: n}
}

func (r *PRNGReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.left -= int64(n)
	return n, nil
}
