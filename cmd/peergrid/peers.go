package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/views"
)

func (m *Main) runPeers(ctx context.Context, args []string) (int, error) {
	if len(args) > 0 && args[0] == "revoke" {
		return m.peersRevoke(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "trust" {
		return m.peersTrust(ctx, args[1:])
	}
	fs := m.newFlagSet("peers", "peers [--json] | peers revoke ID | peers trust ID")
	cf := m.addClientFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	peers, err := m.client(cf).Peers(ctx)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(peers)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLES\tCORES\tENGINES\tSTATE\tRUNNING\tLEASED\tDONE\tAGREED\tOUTVOTED\tTRUST\tCPU GIVEN\tLAST SEEN")
	for _, p := range peers {
		seen := "-"
		if !p.LastSeen.IsZero() && p.LastSeen.Unix() > 0 {
			seen = time.Since(p.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", termSafe(p.ID), termSafe(p.Address), termSafe(strings.Join(p.Roles, ",")), p.Cores, termSafe(strings.Join(p.Engines, ",")), p.State, p.Running, p.Leased, p.Done, p.Agreed, p.Outvoted, trustOf(p), views.CPUTime(p.CPUSeconds), seen)
	}
	return exitOK, tw.Flush()
}

// trustOf is a worker's standing as `peers` shows it: ok, or distrusted
// (leased nothing until `peers trust`); "-" for a peer that runs no tasks.
func trustOf(p api.Peer) string {
	switch {
	case !slices.Contains(p.Roles, api.RoleWorker):
		return "-"
	case p.Distrusted:
		return "distrusted"
	default:
		return "ok"
	}
}

// peersTrust clears a distrusted worker's record (operator): it is leased
// work again, and every result of it is checked until it earns a streak.
func (m *Main) peersTrust(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("peers trust", "peers trust ID")
	cf := m.addClientFlags(fs, false)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).TrustPeer(ctx, id); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "trusted worker %s again: it is leased work, and its results are checked until it has a clean streak\n", termSafe(id))
	return exitOK, nil
}

// peersRevoke cuts a worker off (operator): its credentials are revoked on
// every server, it is marked down, and its leases go back to the queue.
func (m *Main) peersRevoke(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("peers revoke", "peers revoke ID")
	cf := m.addClientFlags(fs, false)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	if err := m.client(cf).RevokePeer(ctx, id); err != nil {
		return exitError, err
	}
	fmt.Fprintf(m.Stdout, "revoked worker %s: its credentials no longer work, its tasks are queued again\n", id)
	return exitOK, nil
}
