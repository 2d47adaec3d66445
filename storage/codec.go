package storage

import (
	"fmt"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// Defaults for erasure coding; the cluster and a job may override k and m.
const (
	DefaultK           = 4
	DefaultM           = 2
	DefaultSegmentSize = 4 << 20
)

type codecKey struct{ k, m int }

var codecs sync.Map // codecKey -> reedsolomon.Encoder

// codec returns a shared Reed-Solomon encoder for k data and m parity shards.
// Encoders are safe for concurrent use.
func codec(k, m int) (reedsolomon.Encoder, error) {
	key := codecKey{k, m}
	if e, ok := codecs.Load(key); ok {
		return e.(reedsolomon.Encoder), nil
	}
	if m == 0 {
		return nil, nil
	}
	e, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("reed-solomon k=%d m=%d: %w", k, m, err)
	}
	e2, _ := codecs.LoadOrStore(key, e)
	return e2.(reedsolomon.Encoder), nil
}

// splitSegment lays a segment out as k data and m parity shards inside buf,
// whose capacity must be at least shardSize(len(data), k)*(k+m), zero-pads
// the last data shard and computes parity. data must be buf[:len(data)].
func splitSegment(buf []byte, n int, k, m int) ([][]byte, error) {
	size := int(shardSize(int64(n), k))
	buf = buf[:size*(k+m)]
	clear(buf[n : size*k])
	shards := make([][]byte, k+m)
	for i := range shards {
		shards[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	if m == 0 {
		return shards, nil
	}
	enc, err := codec(k, m)
	if err != nil {
		return nil, err
	}
	if err := enc.Encode(shards); err != nil {
		return nil, fmt.Errorf("reed-solomon encode: %w", err)
	}
	return shards, nil
}

// rebuild fills the nil entries of shards from any k present ones: only the
// data shards if dataOnly, every shard otherwise.
func rebuild(shards [][]byte, k, m int, dataOnly bool) error {
	if m == 0 {
		for i := range k {
			if shards[i] == nil {
				return fmt.Errorf("data shard %d missing and there is no parity", i)
			}
		}
		return nil
	}
	enc, err := codec(k, m)
	if err != nil {
		return err
	}
	if dataOnly {
		err = enc.ReconstructData(shards)
	} else {
		err = enc.Reconstruct(shards)
	}
	if err != nil {
		return fmt.Errorf("reed-solomon reconstruct: %w", err)
	}
	return nil
}
