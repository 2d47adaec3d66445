package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// resultReaders is how many erasure-coded results are read from the storage
// peers at once.
const resultReaders = 4

// DownloadResults writes each finished task's stdout and stderr to
// dir/<index>.out and .err (creating dir) and returns how many tasks it
// wrote, a page of results at a time: a stdout kept as an erasure-coded blob
// goes from the storage peers straight into its file, through a temporary
// file renamed once the blob's hash checks out, so memory stays bounded
// however big the job or its results. `peergrid job results --out` is this.
func (c *Client) DownloadResults(ctx context.Context, id, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	var peers map[string]storage.ShardPeer // listed once, at the first coded result
	n := 0
	err := c.EachResultPage(ctx, id, func(page []api.TaskResult) error {
		var coded []api.TaskResult
		for _, r := range page {
			if r.State != tasks.TaskDone && r.State != tasks.TaskFailed {
				continue
			}
			n++
			base := filepath.Join(dir, fmt.Sprint(r.Index))
			if err := os.WriteFile(base+".err", r.Stderr, 0o644); err != nil {
				return err
			}
			if r.StdoutBlob != "" {
				coded = append(coded, r)
			} else if err := os.WriteFile(base+".out", r.Stdout, 0o644); err != nil {
				return err
			}
		}
		if len(coded) > 0 && peers == nil {
			var err error
			if peers, err = c.ShardPeers(ctx); err != nil {
				return err
			}
		}
		return c.readCodedResults(ctx, id, dir, coded, peers)
	})
	return n, err
}

// readCodedResults reads the results' stdout blobs into their .out files,
// resultReaders at a time, each through a temporary file renamed into place
// once its bytes check out.
func (c *Client) readCodedResults(ctx context.Context, id, dir string, coded []api.TaskResult, peers map[string]storage.ShardPeer) error {
	sem := make(chan struct{}, resultReaders)
	errs := make([]error, len(coded))
	var wg sync.WaitGroup
	for i, r := range coded {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.readBlobToFile(ctx, r.StdoutBlob, filepath.Join(dir, fmt.Sprint(r.Index)+".out"), peers); err != nil {
				errs[i] = fmt.Errorf("job %s task %d: stdout: %w", id, r.Index, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Client) readBlobToFile(ctx context.Context, hash, path string, peers map[string]storage.ShardPeer) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := c.ReadBlobVia(ctx, hash, f, peers); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
