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
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxShardSize bounds one shard written to a ShardStore: a segment of
// MaxSegmentSize coded with k=1.
const DefaultMaxShardSize = MaxSegmentSize

// DefaultShardQuota is how many bytes of shards a store holds when its
// owner sets no quota (a volunteer's max_disk): enough for a real share of a
// grid's data, bounded so a peer's disk does not fill with what strangers
// send it.
const DefaultShardQuota int64 = 20 << 30

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
	// MaxBytes is the store's quota: the bytes of shards it may hold. A
	// put that would pass it is refused with ErrStoreFull (HTTP 507) before
	// a byte is written (default DefaultShardQuota; SetMaxBytes changes it).
	MaxBytes int64
}

// ShardStore is a content-addressed directory of shards on local disk:
// <dir>/shards/<2 hex>/<hash>. Writes are atomic (temp file, fsync, rename)
// and every shard is checked against its hash on write and on read. A shard
// found corrupt is moved to <dir>/quarantine and reported.
// It is safe for concurrent use.
type ShardStore struct {
	dir      string
	opts     ShardStoreOptions
	maxBytes atomic.Int64

	mu       sync.Mutex
	used     int64 // bytes of shards held
	reserved int64 // bytes promised to puts in progress
}

// OpenShardStore opens (creating if needed) the shard store under dir and
// removes temp files left by a crash.
func OpenShardStore(dir string, opts ShardStoreOptions) (*ShardStore, error) {
	if opts.MaxShardSize <= 0 {
		opts.MaxShardSize = DefaultMaxShardSize
	}
	s := &ShardStore{dir: dir, opts: opts}
	s.SetMaxBytes(opts.MaxBytes)
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
	if s.used, err = dirBytes(s.shardDir()); err != nil {
		return nil, fmt.Errorf("shard store %s: %w", dir, err)
	}
	return s, nil
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// SetMaxBytes sets the store's quota (n <= 0: DefaultShardQuota). Shards
// already held over a lowered quota are kept; new ones are refused.
func (s *ShardStore) SetMaxBytes(n int64) {
	if n <= 0 {
		n = DefaultShardQuota
	}
	s.maxBytes.Store(n)
}

// MaxBytes is the store's quota.
func (s *ShardStore) MaxBytes() int64 { return s.maxBytes.Load() }

// Used is how many bytes of shards the store holds.
func (s *ShardStore) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// reserve promises a put of size bytes (size < 0: not known) room under
// the quota; old is the size of a copy already held, which the put
// replaces. It returns the bytes reserved and the most the put may write.
func (s *ShardStore) reserve(hash string, size, old int64) (reserved, limit int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	quota := s.maxBytes.Load()
	room := quota - s.used - s.reserved + old
	if size < 0 {
		return 0, max(room, 0), nil // checked as it is written
	}
	if size > room {
		return 0, 0, s.quotaError(hash, size, quota)
	}
	reserved = max(size-old, 0)
	s.reserved += reserved
	return reserved, size, nil
}

// quotaError names the quota a put of size bytes would pass. Called with
// s.mu held.
func (s *ShardStore) quotaError(hash string, size, quota int64) error {
	return fmt.Errorf("shard %s: %w: %d bytes would pass this peer's quota of %d bytes (%d held, %d being written)",
		hash, ErrStoreFull, size, quota, s.used, s.reserved)
}

// settle ends a put's reservation and counts what it changed on disk.
func (s *ShardStore) settle(reserved, delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= reserved
	s.used += delta
}

// fileSize is the size of the file at path, 0 if there is none.
func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return st.Size()
	}
	return 0
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

// Put stores the shard named hash, read from r (PutSized with the size not
// known in advance).
func (s *ShardStore) Put(ctx context.Context, hash string, r io.Reader) error {
	return s.PutSized(ctx, hash, r, -1)
}

// PutSized stores the shard named hash, size bytes (-1: not known) read
// from r. A shard that would pass the store's quota is refused before it is
// read, wrapping ErrStoreFull. The bytes are hashed as they are written to
// a temp file; on a mismatch nothing is stored and the error wraps
// ErrHashMismatch. The file is fsynced and renamed into place, so a crash
// leaves either the whole shard or none. Putting a shard already held
// rewrites it, so a repair can replace a copy that rotted unnoticed.
func (s *ShardStore) PutSized(ctx context.Context, hash string, r io.Reader, size int64) (err error) {
	if err := CheckHash(hash); err != nil {
		return err
	}
	if size > s.opts.MaxShardSize {
		return fmt.Errorf("shard %s: %w: %d bytes, limit %d", hash, ErrShardTooLarge, size, s.opts.MaxShardSize)
	}
	if s.opts.Admit != nil {
		if err := s.opts.Admit(); err != nil {
			return fmt.Errorf("shard %s: %w", hash, err)
		}
	}
	old := fileSize(s.Path(hash))
	reserved, limit, err := s.reserve(hash, size, old)
	if err != nil {
		return err
	}
	var written int64 = -1
	defer func() {
		delta := int64(0)
		if written >= 0 {
			delta = written - old
		}
		s.settle(reserved, delta)
	}()
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
	n, err := s.copyVerified(ctx, hash, tmp, r, limit)
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	if err := s.install(hash, tmp.Name()); err != nil {
		return err
	}
	written = n
	return nil
}

// copyVerified copies r to f, refusing more than MaxShardSize bytes, more
// than quotaLimit (the room left under the quota), and bytes that do not
// hash to hash. It returns how many bytes it wrote.
func (s *ShardStore) copyVerified(ctx context.Context, hash string, f *os.File, r io.Reader, quotaLimit int64) (int64, error) {
	limit := min(s.opts.MaxShardSize, quotaLimit)
	h := newShardHasher()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return n, fmt.Errorf("shard %s: %w", hash, err)
	}
	if n > s.opts.MaxShardSize {
		return n, fmt.Errorf("shard %s: %w: over %d bytes", hash, ErrShardTooLarge, s.opts.MaxShardSize)
	}
	if n > limit {
		s.mu.Lock()
		defer s.mu.Unlock()
		return n, s.quotaError(hash, n, s.maxBytes.Load())
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return n, fmt.Errorf("shard %s: %w: %d bytes hash to %s", hash, ErrHashMismatch, n, got)
	}
	return n, nil
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
	size := fileSize(s.Path(hash))
	defer s.settle(0, -size)
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
	size := fileSize(s.Path(hash))
	if err := os.Remove(s.Path(hash)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("shard %s: %w", hash, err)
	}
	s.settle(0, -size)
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
