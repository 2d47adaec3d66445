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
// dir/<index>.out and .err and returns how many tasks it wrote, a page of
// results at a time: a stdout kept as an erasure-coded blob goes from the
// storage peers straight into its file, so memory stays bounded however big
// the job or its results. dir is created only once the first page has
// arrived (a wrong job id creates nothing), and every file is written to a
// temporary file renamed into place once complete (and, for a blob, once
// its hash checks out), so an existing file is replaced whole or not at
// all. `peergrid job results --out` is this.
func (c *Client) DownloadResults(ctx context.Context, id, dir string) (int, error) {
	var peers map[string]storage.ShardPeer // listed once, at the first coded result
	n := 0
	err := c.EachResultPage(ctx, id, func(page []api.TaskResult) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var coded []api.TaskResult
		for _, r := range page {
			if r.State != tasks.TaskDone && r.State != tasks.TaskFailed {
				continue
			}
			n++
			base := filepath.Join(dir, fmt.Sprint(r.Index))
			if err := writeFileAtomic(base+".err", r.Stderr); err != nil {
				return err
			}
			if r.StdoutBlob != "" {
				coded = append(coded, r)
			} else if err := writeFileAtomic(base+".out", r.Stdout); err != nil {
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
	if err == nil {
		err = os.MkdirAll(dir, 0o755) // a job with no finished task yet: an empty dir
	}
	return n, err
}

// ResultFileMode is the mode of every file DownloadResults and ReadBlobToFile
// write, inline or erasure-coded alike.
const ResultFileMode = 0o644

// writeFileAtomic writes data to path through a temporary file in the same
// directory, renamed into place once written.
func writeFileAtomic(path string, data []byte) error {
	return writeViaTemp(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// writeViaTemp creates a temporary file beside path, lets fill write it,
// and renames it to path (mode ResultFileMode) only if fill and the close
// succeed; otherwise it removes the temporary file and path is untouched.
func writeViaTemp(path string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(ResultFileMode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ReadBlobToFile writes a blob to path through a temporary file in path's
// directory, renamed into place once every byte has arrived and checked
// out: a failed read (an unknown hash, too few shards) leaves an existing
// file at path as it was. It returns the shard faults met on the way.
func (c *Client) ReadBlobToFile(ctx context.Context, hash, path string) ([]storage.ShardFault, error) {
	var faults []storage.ShardFault
	err := writeViaTemp(path, func(f *os.File) error {
		var err error
		faults, err = c.ReadBlob(ctx, hash, f)
		return err
	})
	return faults, err
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
	return writeViaTemp(path, func(f *os.File) error {
		_, err := c.ReadBlobVia(ctx, hash, f, peers)
		return err
	})
}
