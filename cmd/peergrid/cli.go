package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
)

// Exit codes.
const (
	exitOK        = 0
	exitJobFailed = 1 // the command worked; the job it waited for did not
	exitError     = 2 // bad usage, bad input, or the grid could not be reached
	// exitInterrupted: Ctrl-C stopped `job wait` or `submit --wait`; the job
	// runs on (128 + SIGINT, as shells report it).
	exitInterrupted = 130
)

// errUsage is returned for bad command lines; the usage text was printed.
var errUsage = errors.New("usage")

// Main holds the process's streams and environment, so tests can run the CLI
// in-process.
type Main struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string

	debug bool   // --debug or PEERGRID_DEBUG: print an error's whole cause chain
	addr  string // the server address the last client was made for, for errors
}

// NewMain returns a Main on the real process.
func NewMain() *Main {
	return &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

type command struct {
	name    string
	summary string
	run     func(m *Main, ctx context.Context, args []string) (int, error)
}

func (m *Main) commands() []command {
	return []command{
		{"agent", "run a server, a worker, or both (--server, --worker)", (*Main).runAgent},
		{"dev", "run a server and a worker in one process on loopback", (*Main).runDev},
		{"demo", "run a dev grid and every example job, and check the results", (*Main).runDemo},
		{"new", "write a task to start from: new go|rust|c DIR", (*Main).runNew},
		{"job", "submit, watch, fetch and cancel jobs (job help)", (*Main).runJob},
		{"peers", "list servers and workers (peers revoke ID cuts a worker off, peers trust ID clears a distrusted one)", (*Main).runPeers},
		{"acl", "credentials: acl token create|list|revoke", (*Main).runACL},
		{"blob", "store and read blobs (blob put|get|stat)", (*Main).runBlob},
		{"operator", "operate the Raft group (operator raft list-peers|remove-peer)", (*Main).runOperator},
		{"worker", "the worker on this machine: status, pause, resume, prefs, install", (*Main).runWorkerCmd},
		{"version", "print the version of this binary", (*Main).runVersion},
	}
}

// Run runs one command line and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	m.debug = m.Getenv("PEERGRID_DEBUG") != ""
	if len(args) > 0 && (args[0] == "--debug" || args[0] == "-debug") {
		m.debug, args = true, args[1:]
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		m.usage()
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	for _, c := range m.commands() {
		if c.name == args[0] {
			code, err := c.run(m, ctx, args[1:])
			return m.finish(code, err)
		}
	}
	names := make([]string, 0, len(m.commands()))
	for _, c := range m.commands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(m.Stderr, "peergrid: %s\n\n", unknownCommand("", args[0], names))
	m.usage()
	return exitError
}

func (m *Main) finish(code int, err error) int {
	switch {
	case err == nil:
		return code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err == errUsage: // the usage text was printed
		return exitError
	case errors.Is(err, errUsage): // "usage: what was wrong"
		fmt.Fprintf(m.Stderr, "peergrid: %s\n", termSafeText(strings.TrimPrefix(err.Error(), errUsage.Error()+": ")))
		return exitError
	}
	m.printError(err)
	return exitError
}

// printError prints err as one line in the user's terms (see explain) and,
// with --debug, the chain of causes it stands for.
func (m *Main) printError(err error) {
	said := explain(err, m.addr)
	fmt.Fprintf(m.Stderr, "peergrid: %s\n", termSafeText(said.Error()))
	var ue *userError
	if m.debug && errors.As(said, &ue) && ue.cause != nil {
		fmt.Fprintf(m.Stderr, "cause: %s\n", termSafeText(ue.cause.Error()))
	}
}

func (m *Main) usage() {
	fmt.Fprintln(m.Stderr, "peergrid: a peer-to-peer volunteer compute grid for WebAssembly batch jobs\n\nUsage: peergrid <command> [flags]\n\nCommands:")
	for _, c := range m.commands() {
		fmt.Fprintf(m.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(m.Stderr, "\nRun 'peergrid <command> -h' for a command's flags.")
}

// newFlagSet makes a FlagSet that prints its usage to Stderr.
func (m *Main) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: peergrid %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and allows them after positional arguments too
// ("job status ID --json"), which users type.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	addr          string
	token         string
	caFingerprint string
	caFile        string
	json          bool
}

func (m *Main) addClientFlags(fs *flag.FlagSet, withJSON bool) *clientFlags {
	cf := &clientFlags{}
	fs.StringVar(&cf.addr, "addr", "", "server address (default $PEERGRID_ADDR, else https://127.0.0.1:7070)")
	addTokenFlags(fs, &cf.token, "your credential (default $PEERGRID_TOKEN)")
	fs.StringVar(&cf.caFingerprint, "ca-fingerprint", "", "the cluster CA to trust, sha256:... (default $PEERGRID_CA_FINGERPRINT)")
	fs.StringVar(&cf.caFile, "ca-file", "", "the cluster CA's certificate to trust, instead of a fingerprint (default $PEERGRID_CA_FILE)")
	fs.BoolVar(&m.debug, "debug", m.debug, "on an error, print the whole chain of causes (default $PEERGRID_DEBUG)")
	if withJSON {
		fs.BoolVar(&cf.json, "json", false, "print JSON")
	}
	return cf
}

func (m *Main) client(cf *clientFlags) *client.Client {
	addr := firstNonEmpty(cf.addr, m.Getenv("PEERGRID_ADDR"), "https://127.0.0.1:7070")
	m.addr = addr
	c := client.New(addr, firstNonEmpty(cf.token, m.Getenv("PEERGRID_TOKEN")))
	pin, err := m.pin(cf)
	c.Pin(pin)
	if err != nil {
		c.HTTP.Transport = failingTransport{err} // every call fails, saying why
	}
	return c
}

// pin is the cluster CA the flags or the environment name.
func (m *Main) pin(cf *clientFlags) (auth.Pin, error) {
	pin, err := auth.PinOf(firstNonEmpty(cf.caFile, m.Getenv("PEERGRID_CA_FILE")), firstNonEmpty(cf.caFingerprint, m.Getenv("PEERGRID_CA_FINGERPRINT")))
	if err == nil && pin.IsZero() {
		err = errors.New("no cluster CA to trust: set PEERGRID_CA_FINGERPRINT (peergrid dev prints it; an operator gives it with your token) or --ca-fingerprint")
	}
	return pin, err
}

// failingTransport fails every request with the reason the client could
// not be set up, so a command reports it where it would have called.
type failingTransport struct{ err error }

func (t failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m *Main) printJSON(v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// logger logs to Stderr at the given level ("debug", "info", "warn", "error").
func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}
