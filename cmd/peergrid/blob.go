package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/peergrid/peergrid/api/client"
)

func (m *Main) runBlob(ctx context.Context, args []string) (int, error) {
	subs := map[string]func(context.Context, []string) (int, error){
		"put": m.blobPut, "get": m.blobGet, "stat": m.blobStat, "rm": m.blobRm,
	}
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, args[1:])
		}
	}
	fmt.Fprintln(m.Stderr, `Usage: peergrid blob <command>

  put FILE [--k K] [--m M] [--allow-fewer-parity]   store a file; prints its hash
  get HASH [-o FILE]                                write a blob to FILE (default stdout)
  stat HASH [--json]                                placement and health of every shard, proved by content
  rm HASH                                           unpin: garbage collection takes it once no job uses it`)
	return exitError, errUsage
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
	hash, man, err := m.client(cf).PutBlobFrom(ctx, f, st.Size(), opts)
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
	var w io.Writer = m.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return exitError, err
		}
		defer f.Close()
		w = f
	}
	faults, err := m.client(cf).ReadBlob(ctx, hash, w)
	for _, f := range faults {
		fmt.Fprintf(m.Stderr, "warning: segment %d shard %d on %s: %s\n", f.Segment, f.Index, f.Peer, f.Kind)
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
			fmt.Fprintf(tw, "%d\t%d\t%s\t%t\t%s\n", i, s.Index, s.Peer, s.Healthy, oneLine(s.Error))
		}
	}
	return exitOK, tw.Flush()
}
