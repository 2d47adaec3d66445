package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultMaxShardSize bounds one shard written to a ShardStore: a segment of
// MaxSegmentSize coded with k=1.
const DefaultMaxShardSize = MaxSegmentSize

var (
	// ErrShardNotFound is wrapped when a store does not hold a shard.
	ErrShardNotFound = errors.New("shard not found")
	// ErrCorruptShard is wrapped when a stored or received shard does not
	// match its hash. A corrupt shard counts as missing.
	ErrCorruptShard = errors.New("corrupt shard")
	// ErrShardTooLarge is wrapped when a shard is over the store's limit.
	ErrShardTooLarge = errors.New("shard too large")
	// ErrStoreFull is wrapped when a store takes no more shards (its
	// owner's disk limit); a writer moves to another peer.
	ErrStoreFull = errors.New("shard store full")
)

// ShardStoreOptions tunes a ShardStore. The zero value is usable.
type ShardStoreOptions struct {
	// MaxShardSize refuses larger shards on Put (default DefaultMaxShardSize).
	MaxShardSize int64
	// OnCorrupt, if set, is called with the hash of each shard found corrupt
	// on read; the shard has already been moved to quarantine. The owner
	// reports it so the leader can plan repair.
	OnCorrupt func(hash string)
	// Logger receives one line per corrupt shard (keys: shard, path); nil logs nothing.
	Logger *slog.Logger
	// Admit, if set, is asked before each Put; an error (wrapping
	// ErrStoreFull) refuses the shard. The owner's disk limit lives there.
	Admit func() error
}

// ShardStore is a content-addressed directory of shards on local disk:
// <dir>/shards/<2 hex>/<hash>. Writes are atomic (temp file, fsync, rename)
// and every shard is checked against its hash on write and on read. A shard
// found corrupt is moved to <dir>/quarantine and reported.
// It is safe for concurrent use.
type ShardStore struct {
	dir  string
	opts ShardStoreOptions
}

// OpenShardStore opens (creating if needed) the shard store under dir and
// removes temp files left by a crash.
func OpenShardStore(dir string, opts ShardStoreOptions) (*ShardStore, error) {
	if opts.MaxShardSize <= 0 {
		opts.MaxShardSize = DefaultMaxShardSize
	}
	s := &ShardStore{dir: dir, opts: opts}
	for _, d := range []string{s.shardDir(), s.tmpDir(), s.quarantineDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("shard store %s: %w", dir, err)
		}
	}
	tmps, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("shard store %s: %w", dir, err)
	}
	for _, e := range tmps {
		_ = os.Remove(filepath.Join(s.tmpDir(), e.Name()))
	}
	return s, nil
}

// Dir is the store's directory.
func (s *ShardStore) Dir() string { return s.dir }

func (s *ShardStore) shardDir() string      { return filepath.Join(s.dir, "shards") }
func (s *ShardStore) tmpDir() string        { return filepath.Join(s.dir, "tmp") }
func (s *ShardStore) quarantineDir() string { return filepath.Join(s.dir, "quarantine") }

// Path is where the shard named hash lives (whether or not it exists).
func (s *ShardStore) Path(hash string) string {
	return filepath.Join(s.shardDir(), hash[:2], hash)
}

// Put stores the shard named hash, read from r. The bytes are hashed as they
// are written to a temp file; on a mismatch nothing is stored and the error
// wraps ErrHashMismatch. The file is fsynced and renamed into place, so a
// crash leaves either the whole shard or none. Putting a shard already held
// rewrites it, so a repair can replace a copy that rotted unnoticed.
func (s *ShardStore) Put(ctx context.Context, hash string, r io.Reader) (err error) {
	if err := CheckHash(hash); err != nil {
		return err
	}
	if s.opts.Admit != nil {
		if err := s.opts.Admit(); err != nil {
			return fmt.Errorf("shard %s: %w", hash, err)
		}
	}
	tmp, err := os.CreateTemp(s.tmpDir(), hash[:8]+"-*")
	if err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := s.copyVerified(ctx, hash, tmp, r); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	return s.install(hash, tmp.Name())
}

// copyVerified copies r to f, refusing more than MaxShardSize bytes and bytes
// that do not hash to hash.
func (s *ShardStore) copyVerified(ctx context.Context, hash string, f *os.File, r io.Reader) error {
	h := newShardHasher()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, s.opts.MaxShardSize+1))
	if err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	if n > s.opts.MaxShardSize {
		return fmt.Errorf("shard %s: %w: over %d bytes", hash, ErrShardTooLarge, s.opts.MaxShardSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("shard %s: %w: %d bytes hash to %s", hash, ErrHashMismatch, n, got)
	}
	return nil
}

func (s *ShardStore) install(hash, tmp string) error {
	dir := filepath.Dir(s.Path(hash))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	if err := os.Rename(tmp, s.Path(hash)); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get returns the shard named hash after checking its bytes against the hash.
// A missing shard wraps ErrShardNotFound; a corrupt one wraps ErrCorruptShard,
// is moved to quarantine and reported through OnCorrupt.
func (s *ShardStore) Get(ctx context.Context, hash string) ([]byte, error) {
	if err := CheckHash(hash); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.Path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("shard %s: %w", hash, ErrShardNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", hash, err)
	}
	if got := shardHash(data); got != hash {
		s.quarantine(hash)
		return nil, fmt.Errorf("shard %s: %w: stored bytes hash to %s", hash, ErrCorruptShard, got)
	}
	return data, nil
}

// quarantine moves a corrupt shard out of the store and reports it.
func (s *ShardStore) quarantine(hash string) {
	dst := filepath.Join(s.quarantineDir(), hash)
	if err := os.Rename(s.Path(hash), dst); err != nil {
		_ = os.Remove(s.Path(hash))
	} else {
		now := time.Now() // the sweep keeps a quarantined shard DefaultQuarantineKeep from now
		_ = os.Chtimes(dst, now, now)
	}
	if s.opts.Logger != nil {
		s.opts.Logger.Warn("corrupt shard quarantined", "shard", hash, "path", dst)
	}
	if s.opts.OnCorrupt != nil {
		s.opts.OnCorrupt(hash)
	}
}

// Has reports whether the store holds the shard (without checking its bytes).
func (s *ShardStore) Has(hash string) (bool, error) {
	if err := CheckHash(hash); err != nil {
		return false, err
	}
	_, err := os.Stat(s.Path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("shard %s: %w", hash, err)
	}
	return true, nil
}

// Delete removes the shard; deleting a shard not held is not an error. Shards
// are content-addressed, so one file may serve several blobs: only the
// leader's garbage collector, which knows every manifest, may delete.
func (s *ShardStore) Delete(hash string) error {
	if err := CheckHash(hash); err != nil {
		return err
	}
	if err := os.Remove(s.Path(hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	return nil
}

// List returns the hash of every shard held, for garbage collection and
// repair planning.
func (s *ShardStore) List(ctx context.Context) ([]string, error) {
	var out []string
	err := filepath.WalkDir(s.shardDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() && CheckHash(d.Name()) == nil && strings.HasPrefix(d.Name(), filepath.Base(filepath.Dir(path))) {
			out = append(out, d.Name())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shard store %s: %w", s.dir, err)
	}
	return out, nil
}

// Scrub reads every shard and quarantines (and reports) the corrupt ones,
// returning their hashes. A peer runs it now and then so the leader hears of
// rot before a reader does.
func (s *ShardStore) Scrub(ctx context.Context) ([]string, error) {
	hashes, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, h := range hashes {
		if _, err := s.Get(ctx, h); errors.Is(err, ErrCorruptShard) {
			bad = append(bad, h)
		} else if err := ctx.Err(); err != nil {
			return bad, err
		}
	}
	return bad, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
