package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
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

// fetchModule reads a module with the client's ReadBlob: from the ledger if
// it is inline, else from the storage peers through its manifest (any k
// verified shards of each segment will do). It retries while the grid is
// unavailable, for up to moduleFetchPatience: a leader change is not the
// task's fault and should not cost an attempt. It refuses more than
// api.MaxModuleSize bytes. The caller checks the hash.
func (w *Worker) fetchModule(ctx context.Context, hash string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, moduleFetchTimeout)
	defer cancel()
	giveUp := time.Now().Add(moduleFetchPatience)
	b := newBackoff()
	for {
		buf := &cappedBuffer{max: api.MaxModuleSize}
		faults, err := w.client.ReadBlob(ctx, hash, buf)
		for _, f := range faults {
			w.log.Warn("module shard fault", "module", hash, "segment", f.Segment, "shard", f.Index, "peer", f.Peer, "kind", f.Kind)
		}
		if err == nil {
			return buf.Bytes(), nil
		}
		if !errors.Is(err, api.ErrUnavailable) || ctx.Err() != nil || time.Now().After(giveUp) {
			return nil, err
		}
		b.wait(ctx)
	}
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

// inlineThreshold is the cluster's inline threshold: results over it go to
// the storage peers. The client caches it (see api.Client.ClusterStorage);
// when the servers cannot be asked it is the last value known, else
// storage.DefaultInlineThreshold.
func (w *Worker) inlineThreshold(ctx context.Context) int64 {
	cfg, err := w.client.ClusterStorage(ctx)
	if err != nil {
		w.log.Debug("storage config", "err", err)
	}
	if cfg.InlineThreshold > 0 {
		return cfg.InlineThreshold
	}
	return storage.DefaultInlineThreshold
}
