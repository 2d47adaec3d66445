package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
)

// subcommand runs one subcommand of a command group ("job", "blob").
type subcommand func(context.Context, []string) (int, error)

// dispatch runs the subcommand args[0] names. With no subcommand it prints
// usage and fails; with help, -h or --help it prints usage and succeeds (as
// `peergrid -h` does); with an unknown one it says so, suggests the nearest
// known one, and fails.
func (m *Main) dispatch(ctx context.Context, group string, args []string, subs map[string]subcommand, usage string) (int, error) {
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(ctx, args[1:])
		}
	}
	if len(args) > 0 && !isHelp(args[0]) {
		fmt.Fprintf(m.Stderr, "peergrid: %s\n\n", unknownCommand(group, args[0], slices.Collect(mapKeys(subs))))
		fmt.Fprintln(m.Stderr, usage)
		return exitError, errUsage
	}
	fmt.Fprintln(m.Stderr, usage)
	if len(args) == 0 {
		return exitError, errUsage
	}
	return exitOK, nil
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// unknownCommand says a command is unknown, with the nearest known one.
func unknownCommand(group, name string, known []string) string {
	full := name
	if group != "" {
		full = group + " " + name
	}
	msg := fmt.Sprintf("unknown command %q", full)
	if near := nearest(name, known); near != "" {
		if group != "" {
			near = group + " " + near
		}
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return msg
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// nearest is the known word within two edits of word (the first such in
// sorted order), or "".
func nearest(word string, known []string) string {
	slices.Sort(known)
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(word, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, with a swap of two neighbours
// counted as one edit ("sumbit" is one edit from "submit").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// runVersion prints the binary's module version, VCS revision when built
// from a checkout, and Go version and platform.
func (m *Main) runVersion(_ context.Context, args []string) (int, error) {
	fs := m.newFlagSet("version", "version")
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	fmt.Fprintln(m.Stdout, versionLine())
	return exitOK, nil
}

func versionLine() string {
	version, revision, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "peergrid " + version
	if revision != "" {
		if len(revision) > 12 {
			revision = revision[:12]
		}
		line += " " + revision
		if modified {
			line += "+dirty"
		}
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
