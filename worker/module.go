package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/wasm"
)

// moduleFetchPatience bounds how long a worker keeps trying to fetch a
// module while the grid has no leader (an election takes seconds), before
// it gives up and the attempt fails.
const moduleFetchPatience = 30 * time.Second

// moduleFetchTimeout bounds one whole module fetch, retries included: a
// large erasure-coded module may take a while to pull, but a fetch stuck on
// an unresponsive peer must not hold the module lock for ever.
const moduleFetchTimeout = 10 * time.Minute

// errModuleTooLarge is wrapped when a module is over api.MaxModuleSize: no
// worker would run it, so it is an invalid_module failure.
var errModuleTooLarge = &wasm.TaskError{Kind: wasm.KindInvalidModule, Msg: fmt.Sprintf("module is over the %d MiB limit on modules", api.MaxModuleSize>>20)}

// ensureModule fetches a module by hash into the module cache, once,
// verifying its hash (and header: a module that is not WebAssembly is an
// invalid_module error).
func (w *Worker) ensureModule(ctx context.Context, hash string) error {
	if _, ok := w.have.Load(hash); ok {
		return nil
	}
	if w.modules.Has(hash) {
		w.have.Store(hash, true)
		return nil
	}
	w.fetchMu.Lock()
	defer w.fetchMu.Unlock()
	if w.modules.Has(hash) {
		return nil
	}
	data, err := w.fetchModule(ctx, hash)
	if err != nil {
		return fmt.Errorf("fetch module %s: %w", hash, err)
	}
	got, err := w.modules.Put(data)
	if err != nil {
		return fmt.Errorf("module %s: %w", hash, err)
	}
	if got != hash {
		return fmt.Errorf("module %s: server sent bytes that hash to %s", hash, got)
	}
	w.have.Store(hash, true)
	return nil
}

// fetchModule reads a module with the client's ReadBlob: from the ledger if
// it is inline, else from the storage peers through its manifest (any k
// verified shards of each segment will do). It retries while the grid is
// unavailable, for up to moduleFetchPatience: a leader change is not the
// task's fault and should not cost an attempt. It refuses more than
// api.MaxModuleSize bytes. The caller checks the hash.
func (w *Worker) fetchModule(ctx context.Context, hash string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, moduleFetchTimeout)
	defer cancel()
	buf := &cappedBuffer{max: api.MaxModuleSize}
	err := w.readPatiently(ctx, hash, buf, func() error { buf.Reset(); return nil }, "module")
	return buf.Bytes(), err
}

// readPatiently reads a blob into dst, trying again for up to
// moduleFetchPatience while the grid cannot be reached or has no leader (a
// leader change, a server gone: not the task's fault, and it should not
// cost an attempt); reset empties dst before each new try.
func (w *Worker) readPatiently(ctx context.Context, hash string, dst io.Writer, reset func() error, what string) error {
	giveUp := time.Now().Add(moduleFetchPatience)
	b := newBackoff()
	for {
		faults, err := w.client.ReadBlob(ctx, hash, dst)
		for _, f := range faults {
			w.log.Warn(what+" shard fault", "blob", hash, "segment", f.Segment, "shard", f.Index, "peer", f.Peer, "kind", f.Kind)
		}
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(giveUp) {
			return err
		}
		w.log.Info("reading a blob: the grid did not answer; trying again", "blob", hash, "err", err)
		b.wait(ctx)
		if err := reset(); err != nil {
			return err
		}
	}
}

// transient reports whether a failed grid call may succeed if tried again:
// the grid said it has no leader, or did not answer at all (a server down
// or cut off). A definite answer (not found, refused) and a task's own
// fault (a module too large) are not.
func transient(err error) bool {
	var se *client.StatusError
	switch {
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrNoAnswer):
		return true
	case errors.As(err, &se), wasm.KindOf(err) != "":
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.ErrUnexpectedEOF)
}

// cappedBuffer is a bytes.Buffer that refuses to grow past max bytes.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.Len()+len(p) > c.max {
		return 0, errModuleTooLarge
	}
	return c.Buffer.Write(p)
}

// moduleErrorKind is how a failed module fetch is reported: invalid_module
// when the bytes are not a module (wasm.ModuleDir.Put checks the header) or
// are too many, else a worker error (the attempt is not the module's fault).
func moduleErrorKind(err error) string {
	if k := wasm.KindOf(err); k != "" {
		return string(k)
	}
	return "worker"
}
