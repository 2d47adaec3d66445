package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func (m *Main) runOperator(ctx context.Context, args []string) (int, error) {
	if len(args) >= 2 && args[0] == "raft" {
		switch args[1] {
		case "list-peers":
			return m.raftListPeers(ctx, args[2:])
		case "remove-peer":
			return m.raftRemovePeer(ctx, args[2:])
		}
	}
	fmt.Fprintln(m.Stderr, `Usage: peergrid operator raft <command>

  list-peers [--json]        the Raft group's servers: id, address, state, voter, last index
  remove-peer ID [--json]    remove a server from the group (it stops voting)`)
	return exitError, errUsage
}

func (m *Main) raftListPeers(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("operator raft list-peers", "operator raft list-peers [--json]")
	cf := m.addClientFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	peers, err := m.client(cf).RaftPeers(ctx)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(peers)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tVOTER\tLAST INDEX")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%d\n", termSafe(p.ID), termSafe(p.Address), p.State, p.Voter, p.LastIndex)
	}
	return exitOK, tw.Flush()
}

func (m *Main) raftRemovePeer(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("operator raft remove-peer", "operator raft remove-peer ID [--json]")
	cf := m.addClientFlags(fs, true)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).RemoveRaftPeer(ctx, id); err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(map[string]string{"removed": id})
	}
	fmt.Fprintf(m.Stdout, "removed %s from the Raft group\n", id)
	return exitOK, nil
}
