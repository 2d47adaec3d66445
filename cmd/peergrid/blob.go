package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
)

func (m *Main) runBlob(ctx context.Context, args []string) (int, error) {
	subs := map[string]subcommand{
		"put": m.blobPut, "get": m.blobGet, "stat": m.blobStat, "rm": m.blobRm,
	}
	return m.dispatch(ctx, "blob", args, subs, `Usage: peergrid blob <command>

  put FILE [--k K] [--m M] [--allow-fewer-parity]   store a file; prints its hash
  get HASH [-o FILE]                                write a blob to FILE (default stdout)
  stat HASH [--json]                                placement and health of every shard, proved by content
  rm HASH                                           unpin: garbage collection takes it once no job uses it`)
}

func (m *Main) blobPut(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("blob put", "blob put FILE [--k K] [--m M] [--allow-fewer-parity]")
	cf := m.addClientFlags(fs, true)
	var opts client.BlobOptions
	fs.IntVar(&opts.K, "k", 0, "data shards per segment (default 4)")
	fs.IntVar(&opts.M, "m", 0, "parity shards per segment (default 2)")
	fs.BoolVar(&opts.AllowFewerParity, "allow-fewer-parity", false, "store even with fewer than k+m storage peers; repair places the rest later")
	fs.BoolVar(&opts.Pin, "pin", true, "keep the blob until 'blob rm' even if no job uses it")
	path, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	f, err := os.Open(path)
	if err != nil {
		return exitError, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return exitError, err
	}
	c := m.client(cf)
	hash, man, err := c.PutBlobFrom(ctx, f, st.Size(), opts)
	if errors.Is(err, storage.ErrNotEnoughPeers) {
		return exitError, tooFewPeers(ctx, c, path, opts, err)
	}
	if err != nil {
		return exitError, fmt.Errorf("blob put %s: %w", path, err)
	}
	if cf.json {
		return exitOK, m.printJSON(map[string]any{"hash": hash, "size": st.Size(), "inline": man == nil})
	}
	fmt.Fprintln(m.Stdout, hash)
	return exitOK, nil
}

func (m *Main) blobGet(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("blob get", "blob get HASH [-o FILE]")
	cf := m.addClientFlags(fs, false)
	out := fs.String("o", "", "write to FILE instead of stdout")
	hash, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	c := m.client(cf)
	var faults []storage.ShardFault
	if *out != "" {
		// Through a temporary file beside it: a wrong hash or too few
		// shards must not truncate a file the user already had.
		faults, err = c.ReadBlobToFile(ctx, hash, *out)
	} else {
		faults, err = c.ReadBlob(ctx, hash, m.Stdout)
	}
	for _, f := range faults {
		fmt.Fprintf(m.Stderr, "warning: segment %d shard %d on %s: %s\n", f.Segment, f.Index, termSafe(f.Peer), f.Kind)
	}
	if err != nil {
		return exitError, fmt.Errorf("blob get %s: %w", hash, err)
	}
	return exitOK, nil
}

func (m *Main) blobRm(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("blob rm", "blob rm HASH")
	cf := m.addClientFlags(fs, false)
	hash, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).Unpin(ctx, hash); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "unpinned %s: it is deleted once no job uses it\n", hash)
	return exitOK, nil
}

func (m *Main) blobStat(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("blob stat", "blob stat HASH [--json]")
	cf := m.addClientFlags(fs, true)
	hash, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	st, err := m.client(cf).StatBlob(ctx, hash)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(st)
	}
	if st.Inline {
		fmt.Fprintf(m.Stdout, "blob %s: %d bytes, inline in the ledger (replicated by Raft)\n", st.Hash, st.Size)
		return exitOK, nil
	}
	fmt.Fprintf(m.Stdout, "blob %s: %d bytes, %d segments, k=%d m=%d\n", st.Hash, st.Size, len(st.Segments), st.K, st.M)
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tSHARD\tPEER\tHEALTHY\tERROR")
	for i, seg := range st.Segments {
		for _, s := range seg.Shards {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%t\t%s\n", i, s.Index, termSafe(s.Peer), s.Healthy, termSafe(oneLine(s.Error)))
		}
	}
	return exitOK, tw.Flush()
}

// tooFewPeers explains a put refused for want of storage peers in the
// flags' terms (the library's AllowFewerParity is --allow-fewer-parity).
func tooFewPeers(ctx context.Context, c *client.Client, path string, opts client.BlobOptions, err error) error {
	live := "fewer"
	if peers, perr := c.StoragePeers(ctx, false); perr == nil {
		live = fmt.Sprintf("only %d", len(peers))
	}
	shards := "the grid's k and m need k+m"
	if opts.K > 0 || opts.M > 0 {
		shards = fmt.Sprintf("--k %d --m %d needs %d", opts.K, opts.M, opts.K+opts.M)
	}
	return &userError{
		msg: fmt.Sprintf("blob put %s: %s storage peers (each shard of a segment needs its own peer), and %s are live: "+
			"choose a smaller --k/--m, or add --allow-fewer-parity to store on at least k peers and let repair place the rest", path, shards, live),
		cause: err,
	}
}
