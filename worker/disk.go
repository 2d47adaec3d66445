package worker

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/storage"
)

// diskBudget is max_disk: the shard store and the caches (modules,
// compiled code, task inputs) together. Their size is measured by walking
// the data dir at most every diskMeasureEvery; the shard store also holds
// itself to max_disk exactly, as its quota (ShardStore.SetMaxBytes). Over the limit, the shard
// store refuses new shards (writers move to another peer) and the compile
// cache is trimmed, oldest first (compiled code is made again on demand).
// Modules and shards already held are kept: a module may be in use, and a
// shard deleted here would need a repair elsewhere.
type diskBudget struct {
	limit atomic.Int64 // 0: none
	used  atomic.Int64 // as last measured

	mu       sync.Mutex
	measured time.Time
}

const diskMeasureEvery = 30 * time.Second

func (d *diskBudget) admit() error {
	if limit := d.limit.Load(); limit > 0 && d.used.Load() >= limit {
		return fmt.Errorf("%w: this volunteer's max_disk (%d bytes) is used", storage.ErrStoreFull, limit)
	}
	return nil
}

// check measures the data dir (if due) under the limit and trims the
// compile cache when over it. The limit is also the shard store's quota,
// so one upload cannot pass it between two measures.
func (d *diskBudget) check(w *Worker, limit int64, now time.Time) {
	d.limit.Store(limit)
	if w.shards != nil {
		w.shards.SetMaxBytes(cmp.Or(limit, w.cfg.ShardQuota))
	}
	if limit <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.measured.IsZero() && now.Sub(d.measured) < diskMeasureEvery {
		return
	}
	d.measured = now
	used := dirSize(w.cfg.DataDir)
	if used > limit {
		freed := trimOldest(filepath.Join(w.cfg.DataDir, "compile"), used-limit)
		if freed > 0 {
			w.log.Info("max_disk: trimmed the compile cache", "freed", freed)
		}
		used -= freed
		if used > limit {
			w.log.Warn("max_disk is used: taking no new shards", "used", used, "max_disk", limit)
		}
	}
	d.used.Store(used)
}

// trimOldest removes the least recently modified files under dir until
// want bytes are freed, and returns how many were.
func trimOldest(dir string, want int64) int64 {
	type file struct {
		path string
		size int64
		mod  time.Time
	}
	var files []file
	_ = filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				files = append(files, file{path, fi.Size(), fi.ModTime()})
			}
		}
		return nil
	})
	slices.SortFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	var freed int64
	for _, f := range files {
		if freed >= want {
			break
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, os.ErrNotExist) {
			freed += f.size
		}
	}
	return freed
}
