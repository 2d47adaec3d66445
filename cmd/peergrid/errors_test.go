package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
)

// runWith runs the CLI against the grid with some environment changed.
func (c *cli) runWith(env map[string]string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	base := map[string]string{"PEERGRID_ADDR": c.grid.Addr, "PEERGRID_TOKEN": c.grid.Token, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	for k, v := range env {
		base[k] = v
	}
	var out, errb strings.Builder
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return base[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

// wantOneLineError checks a failed command said what it must on its first
// line, and no internals (which --debug adds).
func wantOneLineError(t *testing.T, code int, stderr string, want ...string) {
	t.Helper()
	if code != exitError {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitError, stderr)
	}
	first, _, _ := strings.Cut(stderr, "\n")
	for _, w := range want {
		if !strings.Contains(first, w) {
			t.Errorf("first line %q does not say %q", first, w)
		}
	}
	if strings.Contains(first, "dial tcp") || strings.Contains(first, "upload module") {
		t.Errorf("first line %q shows internals", first)
	}
}

func TestCLI_ErrorsSayWhatToDo(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, examples.Tiny(), "name = \"echo\"\nmodule = \"m.wasm\"\ntasks = 1\n")

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "https://" + ln.Addr().String()
		ln.Close()
		code, _, stderr := c.runWith(map[string]string{"PEERGRID_ADDR": addr}, "job", "submit", job)
		wantOneLineError(t, code, stderr, "nothing is listening at "+addr, "PEERGRID_ADDR")
		code, _, stderr = c.runWith(map[string]string{"PEERGRID_ADDR": addr}, "--debug", "job", "list")
		if code != exitError || !strings.Contains(stderr, "cause: ") || !strings.Contains(stderr, "connection refused") {
			t.Fatalf("--debug did not print the cause: %q", stderr)
		}
	})
	t.Run("wrong token on submit", func(t *testing.T) {
		code, _, stderr := c.runWith(map[string]string{"PEERGRID_TOKEN": "not-the-token"}, "job", "submit", job)
		wantOneLineError(t, code, stderr, "refused your credential", "PEERGRID_TOKEN")
		if first, _, _ := strings.Cut(stderr, "\n"); strings.Contains(first, "module") {
			t.Fatalf("a wrong token reads as if the module were at fault: %q", first)
		}
	})
	t.Run("storage peer address", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		peers, err := c.grid.Client().StoragePeers(ctx, false)
		if err != nil || len(peers) == 0 {
			t.Fatalf("storage peers: %v %v", peers, err)
		}
		code, _, stderr := c.runWith(map[string]string{"PEERGRID_ADDR": peers[0].Address}, "job", "list")
		wantOneLineError(t, code, stderr, "is a storage peer's shard address, not a server's API", "PEERGRID_ADDR")
	})
	t.Run("raft port", func(t *testing.T) {
		code, _, stderr := c.runWith(map[string]string{"PEERGRID_ADDR": "https://" + c.grid.RaftAddr}, "job", "list")
		wantOneLineError(t, code, stderr, "does not answer as a peergrid API server", "Raft")
	})
	t.Run("blob put with more shards than peers", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big.bin")
		mustWrite(t, big, make([]byte, 1<<20))
		code, _, stderr := c.run("blob", "put", big, "--k", "10")
		wantOneLineError(t, code, stderr, "--k 10 --m 0 needs 10 storage peers", "only 1 are live", "--allow-fewer-parity")
		if strings.Contains(stderr, "AllowFewerParity") {
			t.Fatalf("the error names the library's option, not the flag: %q", stderr)
		}
	})
	t.Run("missing module", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "job.toml")
		if err := os.WriteFile(path, []byte("name = \"x\"\nmodule = \"x.wasm\"\ntasks = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := c.run("job", "submit", path)
		wantOneLineError(t, code, stderr, `module "x.wasm": no such file`, "GOOS=wasip1 GOARCH=wasm go build -o x.wasm", `build = "go"`)
	})
}

// TestExplain_PlainHTTPPageNotFound: an address that answers Go's bare
// "404 page not found" (a storage peer from before TLS, another web
// server) is not a peergrid API; a 404 the API gives (a job that does not
// exist) is left as the API said it.
func TestExplain_PlainHTTPPageNotFound(t *testing.T) {
	err := fmt.Errorf("GET /v1/jobs: %w", &client.StatusError{Code: 404, Message: "404 page not found"})
	said := explain(err, "https://10.0.0.5:7171").Error()
	if !strings.Contains(said, "https://10.0.0.5:7171 is not a peergrid server's API") || !strings.Contains(said, "PEERGRID_ADDR") {
		t.Fatalf("explained as %q", said)
	}
	apiErr := fmt.Errorf("GET /v1/jobs/j-1: %w", &client.StatusError{Code: 404, Message: "job not found: j-1"})
	if got := explain(apiErr, "https://10.0.0.5:7070"); got != apiErr {
		t.Fatalf("an API 404 was rewritten: %v", got)
	}
}
