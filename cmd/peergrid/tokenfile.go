package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// A token given with --token is in the process's command line, which any
// user of the machine can read (ps, /proc/PID/cmdline). The environment
// ($PEERGRID_TOKEN, readable only by the same user) or a file only its
// owner can read (--token-file) keep it to its owner; --token still works,
// and its help says why not to use it.

const maxTokenFile = 64 << 10

var errTokenFile = errors.New("--token-file")

// addTokenFlags adds --token and --token-file to fs, either of which sets
// *token (the file's content for --token-file); giving both is an error.
// what says whose credential it is, and its default.
func addTokenFlags(fs *flag.FlagSet, token *string, what string) {
	var fromFlag, fromFile bool
	fs.Func("token", what+"; other users of this machine see it in ps: prefer $PEERGRID_TOKEN or --token-file", func(v string) error {
		if fromFile {
			return errors.New("give --token or --token-file, not both")
		}
		fromFlag, *token = true, v
		return nil
	})
	fs.Func("token-file", "read the token from this file (only the token in it; keep it mode 0600) instead of --token", func(path string) error {
		if fromFlag {
			return errors.New("give --token or --token-file, not both")
		}
		tok, err := readTokenFile(path)
		fromFile, *token = true, tok
		return err
	})
}

// readTokenFile is the token in path, trimmed of surrounding whitespace
// (the newline an editor or echo leaves).
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errTokenFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w %s: %w", errTokenFile, path, err)
	case len(b) > maxTokenFile:
		return "", fmt.Errorf("%w %s: larger than %d KiB: not a token file", errTokenFile, path, maxTokenFile>>10)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("%w %s: the file is empty: put the token in it", errTokenFile, path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", fmt.Errorf("%w %s: more than one line: put only the token in it", errTokenFile, path)
	}
	return tok, nil
}
