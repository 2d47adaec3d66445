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
// the job or its results. Everything is first written into a staging
// directory beside dir and moved into dir only once every result has
// arrived (and every blob's hash checked out): a failed download (a wrong
// job id, a blob that cannot be read) creates no dir and changes no file in
// an existing one. `peergrid job results --out` is this.
func (c *Client) DownloadResults(ctx context.Context, id, dir string) (int, error) {
	var stage string // made when the first page arrives
	defer func() {
		if stage != "" {
			os.RemoveAll(stage) // empty, or what a failed download left
		}
	}()
	var peers map[string]storage.ShardPeer // listed once, at the first coded result
	n := 0
	err := c.EachResultPage(ctx, id, func(page []api.TaskResult) error {
		if stage == "" {
			var err error
			if stage, err = makeStage(dir); err != nil {
				return err
			}
		}
		coded, written, err := writeInlineResults(stage, page)
		n += written
		if err != nil {
			return err
		}
		if len(coded) > 0 && peers == nil {
			if peers, err = c.ShardPeers(ctx); err != nil {
				return err
			}
		}
		return c.readCodedResults(ctx, id, stage, coded, peers)
	})
	if err != nil {
		return 0, err
	}
	if stage == "" { // a job with no page at all: an empty dir
		return 0, os.MkdirAll(dir, 0o755)
	}
	return n, publishStage(stage, dir)
}

// makeStage makes the staging directory beside dir (creating dir's parent
// if needed), on the same file system so its files can be renamed into dir.
func makeStage(dir string) (string, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(dir))+".results-*")
}

// writeInlineResults writes the finished tasks' stderr, and stdout kept in
// the ledger, into stage; it returns the results whose stdout is a blob.
func writeInlineResults(stage string, page []api.TaskResult) (coded []api.TaskResult, written int, err error) {
	for _, r := range page {
		if r.State != tasks.TaskDone && r.State != tasks.TaskFailed {
			continue
		}
		written++
		base := filepath.Join(stage, fmt.Sprint(r.Index))
		if err := os.WriteFile(base+".err", r.Stderr, ResultFileMode); err != nil {
			return nil, written, err
		}
		if r.StdoutBlob != "" {
			coded = append(coded, r)
		} else if err := os.WriteFile(base+".out", r.Stdout, ResultFileMode); err != nil {
			return nil, written, err
		}
	}
	return coded, written, nil
}

// publishStage moves a complete download into dir: the staging directory
// becomes dir when there is none, else each file is renamed into it.
func publishStage(stage, dir string) error {
	if err := os.Chmod(stage, 0o755); err != nil { // MkdirTemp made it 0700
		return err
	}
	if err := os.Rename(stage, dir); err == nil {
		return nil
	} else if _, statErr := os.Stat(dir); statErr != nil {
		return err // not because dir exists
	}
	entries, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// ResultFileMode is the mode of every file DownloadResults and ReadBlobToFile
// write, inline or erasure-coded alike (a temporary file is made 0600).
const ResultFileMode = 0o644

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
