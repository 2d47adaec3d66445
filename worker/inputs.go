package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/peergrid/peergrid/api"
)

// inputsDir holds the stored inputs of the tasks being run, one file each.
func (w *Worker) inputsDir() string { return filepath.Join(w.cfg.DataDir, "inputs") }

// resetInputs empties the inputs and outputs directories: whatever is there
// was left by a worker that stopped without cleaning up, and no task of
// this one uses it.
func (w *Worker) resetInputs() error {
	for _, dir := range []string{w.inputsDir(), w.outputsDir()} {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// partialSuffix marks an input file still being written: it is never run.
const partialSuffix = ".part"

// fetchInput streams a task's erasure-coded input from the storage peers
// (ReadBlob: any k verified shards of each segment) into a file under
// inputsDir, so that an input of any size costs the worker a few segments
// of memory, not its size, and returns the file's path for the task's
// stdin. The file is written under a temporary name and renamed only once
// the whole blob was read and its hash checked (ReadBlob checks it at the
// end): a failed or partial read is removed, never run. The caller removes
// the file with removeInput once the task ran.
func (w *Worker) fetchInput(ctx context.Context, a api.Assignment) (string, error) {
	f, err := os.CreateTemp(w.inputsDir(), fmt.Sprintf("%.16s-*%s", a.InputHash, partialSuffix))
	if err != nil {
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	tmp := f.Name()
	err = w.readPatiently(ctx, a.InputHash, f, func() error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err := f.Seek(0, io.SeekStart)
		return err
	}, "input")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.removeInput(tmp)
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	path := strings.TrimSuffix(tmp, partialSuffix)
	if err := os.Rename(tmp, path); err != nil {
		w.removeInput(tmp)
		return "", fmt.Errorf("read input %s: %w", a.InputHash, err)
	}
	return path, nil
}

// removeInput deletes an input file; failing to is only worth a warning
// (the next start empties the directory).
func (w *Worker) removeInput(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("cannot remove an input file", "path", path, "err", err)
	}
}
