package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peergrid/peergrid/scheduler/views"
	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// runWorkerCmd is `peergrid worker status|pause|resume|prefs|install`: a
// volunteer's commands for the worker running on this machine, through its
// control socket in the data dir.
func (m *Main) runWorkerCmd(ctx context.Context, args []string) (int, error) {
	subs := map[string]func(context.Context, []string) (int, error){
		"status": m.workerStatus, "pause": m.workerPause, "resume": m.workerResume, "prefs": m.workerPrefs, "install": m.workerInstall,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintln(m.Stderr, "Usage: peergrid worker status|pause|resume|prefs|install --data-dir DIR [flags]\n\n"+
			"  status    what the worker is doing and why, its preferences, today's totals (--json)\n"+
			"  pause     stop the executors and take no work until resume (tasks are kept for pause_keep)\n"+
			"  resume    run again, within the preferences\n"+
			"  prefs     show the preferences, or change them with --set KEY=VALUE (repeatable)\n"+
			"  install   run the worker as a service of this user (systemd, launchd); --dry-run shows what it would do")
		return exitError, errUsage
	}
	return subs[args[0]](ctx, args[1:])
}

// workerFlags are the flags every worker command has.
type workerFlags struct {
	dataDir string
	json    bool
}

func (m *Main) workerFlagSet(name, usage string, withJSON bool) (*flag.FlagSet, *workerFlags) {
	fs := m.newFlagSet("worker "+name, "worker "+usage)
	wf := &workerFlags{}
	fs.StringVar(&wf.dataDir, "data-dir", "", "the worker agent's --data-dir (required)")
	if withJSON {
		fs.BoolVar(&wf.json, "json", false, "print JSON")
	}
	return fs, wf
}

func (wf *workerFlags) socket() (string, error) {
	if wf.dataDir == "" {
		return "", fmt.Errorf("%w: give the worker agent's --data-dir", errUsage)
	}
	return filepath.Join(wf.dataDir, control.SocketName), nil
}

func (m *Main) workerCall(ctx context.Context, name string, args []string, req control.Request) (int, error) {
	fs, wf := m.workerFlagSet(name, name+" --data-dir DIR [--json]", true)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	sock, err := wf.socket()
	if err != nil {
		return exitError, err
	}
	st, err := control.Call(ctx, sock, req)
	if err != nil {
		return exitError, err
	}
	return exitOK, m.printStatus(st, wf.json)
}

func (m *Main) workerStatus(ctx context.Context, args []string) (int, error) {
	return m.workerCall(ctx, "status", args, control.Request{Op: "status"})
}

func (m *Main) workerPause(ctx context.Context, args []string) (int, error) {
	return m.workerCall(ctx, "pause", args, control.Request{Op: "pause"})
}

func (m *Main) workerResume(ctx context.Context, args []string) (int, error) {
	return m.workerCall(ctx, "resume", args, control.Request{Op: "resume"})
}

// setFlags collects repeated --set KEY=VALUE.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// workerPrefs shows the preferences, or sets some: through the running
// worker (which applies them at once and keeps them in prefs.toml), or,
// with no worker running, in prefs.toml for its next start.
func (m *Main) workerPrefs(ctx context.Context, args []string) (int, error) {
	fs, wf := m.workerFlagSet("prefs", "prefs --data-dir DIR [--set KEY=VALUE]... [--json]", true)
	var sets setFlags
	fs.Var(&sets, "set", "set a preference, KEY=VALUE (keys: "+strings.Join(prefs.Keys, ", ")+")")
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	sock, err := wf.socket()
	if err != nil {
		return exitError, err
	}
	st, err := control.Call(ctx, sock, control.Request{Op: "status"})
	if errors.Is(err, control.ErrNoWorker) {
		return m.prefsOffline(wf, sets)
	}
	if err != nil {
		return exitError, err
	}
	for _, kv := range sets {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return exitError, fmt.Errorf("%w: --set %q: want KEY=VALUE", errUsage, kv)
		}
		if st, err = control.Call(ctx, sock, control.Request{Op: "set", Key: strings.TrimSpace(key), Value: value}); err != nil {
			return exitError, err
		}
	}
	return exitOK, m.printPrefs(st.Prefs, wf.json)
}

// prefsOffline edits prefs.toml when no worker runs on the data dir.
func (m *Main) prefsOffline(wf *workerFlags, sets setFlags) (int, error) {
	file := filepath.Join(wf.dataDir, prefs.FileName)
	p := prefs.Default()
	if err := prefs.LoadFile(file, &p); err != nil {
		return exitError, err
	}
	for _, kv := range sets {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return exitError, fmt.Errorf("%w: --set %q: want KEY=VALUE", errUsage, kv)
		}
		if err := p.Set(strings.TrimSpace(key), value); err != nil {
			return exitError, err
		}
	}
	if len(sets) > 0 {
		if err := prefs.WriteFile(file, &p); err != nil {
			return exitError, err
		}
		fmt.Fprintf(m.Stderr, "no worker is running on %s: wrote %s, which the worker reads when it starts\n", wf.dataDir, file)
	}
	return exitOK, m.printPrefs(p.Map(), wf.json)
}

func (m *Main) printPrefs(p map[string]string, asJSON bool) error {
	if asJSON {
		return m.printJSON(p)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range prefs.Keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, p[k])
	}
	return tw.Flush()
}

func (m *Main) printStatus(st *control.Status, asJSON bool) error {
	if asJSON {
		return m.printJSON(st)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "worker\t%s\n", st.Worker)
	fmt.Fprintf(tw, "state\t%s (since %s)\n", st.Reason, st.Since.Local().Format(time.TimeOnly))
	fmt.Fprintf(tw, "tasks\t%d running, %d held\n", st.Running, st.Held)
	if st.HandedBack {
		fmt.Fprintf(tw, "\tpaused longer than pause_keep: its tasks went back to the grid\n")
	}
	t := st.Today
	fmt.Fprintf(tw, "today\t%d tasks done, %s CPU given, %s stored for the grid\n", t.TasksDone, views.CPUTime(t.CPUSeconds), prefs.FormatSize(t.StoredBytes))
	var ps []string
	for _, k := range prefs.Keys {
		ps = append(ps, k+"="+st.Prefs[k])
	}
	fmt.Fprintf(tw, "prefs\t%s\n", strings.Join(ps, " "))
	names := make([]string, 0, len(st.Sources))
	for k := range st.Sources {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(tw, "%s\t%s\n", k, st.Sources[k])
	}
	return tw.Flush()
}
