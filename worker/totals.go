package worker

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/peergrid/peergrid/worker/control"
)

// totalsPath keeps today's totals across restarts.
func (w *Worker) totalsPath() string { return filepath.Join(w.cfg.DataDir, "today.json") }

func loadTotals(path string, now time.Time) control.Totals {
	var t control.Totals
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &t)
	}
	if t.Date != now.Format(time.DateOnly) {
		return control.Totals{Date: now.Format(time.DateOnly)}
	}
	return t
}

func saveTotals(path string, t control.Totals) {
	b, _ := json.Marshal(t)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, path)
	}
}

// storedCache is the size of the shard store, measured at most once a
// minute (a walk of the store's directory).
type storedCache struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
}

func (c *storedCache) get(w *Worker, now time.Time) int64 {
	if w.shards == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < time.Minute {
		return c.bytes
	}
	c.at, c.bytes = now, dirSize(w.shards.Dir())
	return c.bytes
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// plural writes "1 task", "2 tasks".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
