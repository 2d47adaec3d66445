package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// terminalControls are runes that act on a terminal or reorder text: none
// may reach the CLI's plain output from what a peer or submitter wrote.
var terminalControls = []string{"\x1b", "\r", "\a", "\x00", "\x7f", "\u009b", "\u0085", "\u202a", "\u202e", "\u2066", "\u2069", "\u200f"}

func wantNoControls(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range terminalControls {
		if strings.Contains(out, c) {
			t.Fatalf("%s prints %q raw:\n%q", what, c, out)
		}
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":              "plain name",
		"café 日本 ☃":               "café 日本 ☃",
		"":                        "",
		"evil\x1b[2J\rfake\u202e": `"evil\x1b[2J\rfake\u202e"`,
		"bell\a":                  `"bell\a"`,
		"tab\there":               `"tab\there"`,
		"two\nlines":              `"two\nlines"`,
		"csi\u009b31m":            `"csi\u009b31m"`,
		"del\x7f":                 `"del\x7f"`,
		"isolate\u2066x\u2069":    `"isolate\u2066x\u2069"`,
		"bad utf8 \xff":           `"bad utf8 \xff"`,
		`"evil\x1b[2J"`:           `"\"evil\\x1b[2J\""`, // a literal that looks escaped is quoted too
		`back\slash`:              `back\slash`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %s, want %s", in, got, want)
		}
		wantNoControls(t, "termSafe", termSafe(in))
	}
	for in, want := range map[string]string{
		"job j-1: not found":                 "job j-1: not found",
		"line one\nline two":                 "line one\nline two",
		"task failed: \x1b[2Jboom\rok\u202e": `task failed: \x1b[2Jboom\rok\u202e`,
		"stderr: \xfe\x07":                   `stderr: \xfe\a`,
	} {
		if got := termSafeText(in); got != want {
			t.Errorf("termSafeText(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestCLI_PrintsWhatOthersWroteEscaped: a job named to clear the screen,
// rewrite the line and reverse the text after it is shown escaped by job
// list and job status, as is a credential's name in acl token list, and
// an error that echoes input; --json stays JSON.
func TestCLI_PrintsWhatOthersWroteEscaped(t *testing.T) {
	c := newCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const evil = "evil\x1b[2J\rfake\u202e"
	const escaped = `"evil\x1b[2J\rfake\u202e"`
	gc := c.grid.Client()
	mod := examples.Tiny()
	if err := gc.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	id, err := gc.Submit(ctx, &tasks.JobSpec{Name: evil, ModuleHash: storage.Hash(mod), Tasks: 1, Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1024})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := c.run("job", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, escaped) {
		t.Fatalf("job list: exit %d, want the job's name as %s\n%s%s", code, escaped, out, errOut)
	}
	wantNoControls(t, "job list", out)
	code, out, errOut = c.run("job", "status", id)
	if code != 0 || !strings.Contains(out, escaped) {
		t.Fatalf("job status: exit %d, want the name as %s\n%s%s", code, escaped, out, errOut)
	}
	wantNoControls(t, "job status", out)
	if code, out, _ := c.run("job", "list", "--json"); code != 0 || !strings.Contains(out, `"evil\u001b[2J\rfake`) {
		t.Fatalf("job list --json: exit %d, want the name JSON-escaped\n%s", code, out)
	}

	if _, err := gc.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "alice\x1b]0;owned\a"}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = c.run("acl", "token", "list")
	if code != 0 || !strings.Contains(out, `"alice\x1b]0;owned\a"`) {
		t.Fatalf("acl token list: exit %d, want the name escaped\n%s", code, out)
	}
	wantNoControls(t, "acl token list", out)

	code, _, errOut = c.run("job", "status", "j-\x1b[31m\u202e")
	if code == 0 || !strings.Contains(errOut, `\x1b[31m\u202e`) {
		t.Fatalf("job status of a bad id: exit %d, want its error with the id escaped\n%q", code, errOut)
	}
	wantNoControls(t, "an error", errOut)
}

// runEnv runs the CLI with exactly the given environment (errors_test.go's runWith changes the grid's).
func (c *cli) runEnv(env map[string]string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

// TestCLI_TokenFile: --token-file reads the credential from a file (its
// newline forgiven), takes the place of $PEERGRID_TOKEN, and an empty or
// missing file, or --token beside it, is refused saying so.
func TestCLI_TokenFile(t *testing.T) {
	c := newCLI(t)
	env := map[string]string{"PEERGRID_ADDR": c.grid.Addr, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	dir := t.TempDir()
	good, empty := filepath.Join(dir, "token"), filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte(c.grid.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := c.runEnv(env, "job", "list"); code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("no token at all: exit %d %q, want refused", code, errOut)
	}
	if code, out, errOut := c.runEnv(env, "job", "list", "--token-file", good); code != 0 || !strings.Contains(out, "ID") {
		t.Fatalf("job list --token-file: exit %d %q %q", code, out, errOut)
	}
	env["PEERGRID_TOKEN"] = "wrong"
	if code, _, errOut := c.runEnv(env, "peers", "--token-file", good); code != 0 {
		t.Fatalf("--token-file over a wrong $PEERGRID_TOKEN: exit %d %q", code, errOut)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--token-file", empty}, "empty"},
		{[]string{"--token-file", filepath.Join(dir, "missing")}, "missing"},
		{[]string{"--token", c.grid.Token, "--token-file", good}, "not both"},
		{[]string{"--token-file", good, "--token", c.grid.Token}, "not both"},
	} {
		code, _, errOut := c.runEnv(env, append([]string{"job", "list"}, bad.args...)...)
		if code != exitError || !strings.Contains(errOut, bad.want) {
			t.Errorf("job list %v: exit %d %q, want 2 naming %q", bad.args, code, errOut, bad.want)
		}
	}
}

// TestTokenFlags_EveryCommandWithToken: the agent, worker install and the
// client commands all take --token-file, and --token's help warns of ps.
func TestTokenFlags_EveryCommandWithToken(t *testing.T) {
	for _, args := range [][]string{{"agent", "-h"}, {"worker", "install", "-h"}, {"job", "list", "-h"}, {"peers", "-h"}, {"acl", "token", "list", "-h"}, {"blob", "stat", "-h"}} {
		var errb bytes.Buffer
		m := &Main{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }}
		m.Run(context.Background(), args)
		if !strings.Contains(errb.String(), "-token-file") || !strings.Contains(errb.String(), "see it in ps") {
			t.Errorf("%v: no --token-file, or --token's help does not warn of ps:\n%s", args, errb.String())
		}
	}
	var tok string
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addTokenFlags(fs, &tok, "test")
	path := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(path, []byte("  pgt_abc\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--token-file", path}); err != nil || tok != "pgt_abc" {
		t.Fatalf("--token-file: %q %v", tok, err)
	}
}
