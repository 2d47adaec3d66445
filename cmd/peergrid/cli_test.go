package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/wasmtest"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/wasm"
)

func TestMain(m *testing.M) {
	wasm.MaybeRunExecutor()
	os.Exit(m.Run())
}

// cli runs the CLI in-process against one grid.
type cli struct {
	t    *testing.T
	grid *devgrid.Grid
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &cli{t: t, grid: g}
}

func (c *cli) run(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	return c.runFor(time.Minute, args...)
}

// runFor is run with a longer limit, for a command that builds or first
// compiles a Go-built module (tens of seconds under -race on a loaded
// machine).
func (c *cli) runFor(limit time.Duration, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"PEERGRID_ADDR": c.grid.Addr, "PEERGRID_TOKEN": c.grid.Token, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

// writeJob writes a module and a job file for it into a fresh directory.
func writeJob(t *testing.T, module []byte, toml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), module, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "job.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLI_SubmitWaitStatusResults(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, examples.Tiny(), "name = \"echo\"\nmodule = \"m.wasm\"\nargs = [\"{index}\", \"{count}\"]\ntasks = 5\nengine = \"wazero\"\n")
	code, out, errOut := c.run("job", "submit", job, "--wait", "--json")
	if code != 0 {
		t.Fatalf("submit --wait exit %d: %s %s", code, out, errOut)
	}
	var submitted struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &submitted); err != nil || submitted.ID == "" || submitted.State != "complete" {
		t.Fatalf("submit --wait --json printed %q (%v)", out, err)
	}

	code, out, _ = c.run("job", "status", submitted.ID, "--json")
	if code != 0 {
		t.Fatalf("status exit %d", code)
	}
	var st struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		State string `json:"state"`
		Tasks []struct {
			Index    int     `json:"index"`
			State    string  `json:"state"`
			Attempts int     `json:"attempts"`
			ExitCode *int    `json:"exit_code"`
			Error    *string `json:"error"`
			Engine   string  `json:"engine"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != submitted.ID || st.Name != "echo" || st.State != "complete" || len(st.Tasks) != 5 {
		t.Fatalf("status: %+v", st)
	}
	for i, task := range st.Tasks {
		if task.Index != i || task.State != "done" || task.Attempts != 1 || task.ExitCode == nil || *task.ExitCode != 0 || task.Engine != "wazero" {
			t.Fatalf("task %d: %+v", i, task)
		}
	}
	if !strings.Contains(out, `"error"`) {
		t.Fatal(`status --json has no "error" key`)
	}

	dir := filepath.Join(t.TempDir(), "out")
	if code, _, errOut := c.run("job", "results", submitted.ID, "--out", dir); code != 0 {
		t.Fatalf("results exit %d: %s", code, errOut)
	}
	for i := 0; i < 5; i++ {
		b, err := os.ReadFile(filepath.Join(dir, itoa(i)+".out"))
		if err != nil || string(b) != itoa(i)+" 5\n" {
			t.Fatalf("%d.out = %q (%v)", i, b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, itoa(i)+".err")); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCLI_WaitExitsOneWhenATaskFails(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, wasmtest.Exit(3), "name = \"fails\"\nmodule = \"m.wasm\"\ntasks = 2\nretries = 0\n")
	code, out, errOut := c.run("job", "submit", job, "--wait")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s %s", code, out, errOut)
	}
	id := strings.Fields(out)[2]
	_, out, _ = c.run("job", "status", id)
	if !strings.Contains(out, "exit") || !strings.Contains(out, "failed") {
		t.Fatalf("status does not show the failure:\n%s", out)
	}
}

func TestCLI_BadJobFileSubmitsNothing(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, examples.Tiny(), "name = \"x\"\nmodule = \"m.wasm\"\ntaks = 5\n")
	code, _, errOut := c.run("job", "submit", job)
	if code != 2 || !strings.Contains(errOut, "job.toml:3") || !strings.Contains(errOut, "taks") {
		t.Fatalf("exit %d, stderr %q: want exit 2 naming job.toml:3 and the key", code, errOut)
	}
	notWasm := writeJob(t, []byte("not a module"), "name = \"x\"\nmodule = \"m.wasm\"\ntasks = 1\n")
	if code, _, errOut := c.run("job", "submit", notWasm); code != 2 || !strings.Contains(errOut, "WebAssembly") {
		t.Fatalf("non-wasm module: exit %d, stderr %q", code, errOut)
	}
	atomics := wasmtest.NewModule() // a module no worker would run: threads
	atomics.Memory(1, 1)
	atomics.Export("_start", atomics.Func(nil, nil, nil, wasmtest.Code{0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a}))
	threads := writeJob(t, atomics.Bytes(), "name = \"x\"\nmodule = \"m.wasm\"\ntasks = 1\n")
	if code, _, errOut := c.run("job", "submit", threads); code != 2 || !strings.Contains(errOut, "threads proposal") || !strings.Contains(errOut, "m.wasm") {
		t.Fatalf("module with atomics: exit %d, stderr %q, want it refused naming the module and threads", code, errOut)
	}
	if code, _, _ := c.run("blob", "stat", storage.Hash(atomics.Bytes())); code == 0 {
		t.Fatal("the refused module was uploaded")
	}
	_, out, _ := c.run("job", "list", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("jobs after bad submits: %s", out)
	}
}

func TestCLI_WrongTokenIsRefused(t *testing.T) {
	c := newCLI(t)
	code, _, errOut := c.run("job", "list", "--token", "wrong")
	if code != 2 || !strings.Contains(errOut, "token") || !strings.Contains(errOut, "401") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
}

func TestCLI_CancelAndPeers(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, wasmtest.LoopForever(), "name = \"spin\"\nmodule = \"m.wasm\"\ntasks = 3\ntimeout = \"1m\"\n")
	code, out, _ := c.run("job", "submit", job, "--json")
	if code != 0 {
		t.Fatalf("submit exit %d", code)
	}
	var sub struct{ ID string }
	json.Unmarshal([]byte(out), &sub)
	if code, _, errOut := c.run("job", "cancel", sub.ID); code != 0 {
		t.Fatalf("cancel exit %d: %s", code, errOut)
	}
	_, out, _ = c.run("job", "status", sub.ID, "--json")
	if !strings.Contains(out, `"state": "cancelled"`) {
		t.Fatalf("after cancel: %s", out)
	}
	code, out, _ = c.run("peers", "--json")
	var peers []map[string]any
	if err := json.Unmarshal([]byte(out), &peers); code != 0 || err != nil || len(peers) < 2 {
		t.Fatalf("peers --json: exit %d %v %s", code, err, out)
	}
	for _, key := range []string{"id", "address", "roles", "cores", "state", "running", "done", "last_seen", "engines"} {
		if _, ok := peers[len(peers)-1][key]; !ok {
			t.Fatalf("peers --json lacks %q: %s", key, out)
		}
	}
}

func TestCLI_BlobPutGetStat(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	os.WriteFile(small, []byte("hello blob\n"), 0o644)
	code, out, errOut := c.run("blob", "put", small)
	if code != 0 {
		t.Fatalf("blob put: exit %d %s", code, errOut)
	}
	hash := strings.TrimSpace(out)
	copyPath := filepath.Join(dir, "copy.txt")
	if code, _, errOut := c.run("blob", "get", hash, "-o", copyPath); code != 0 {
		t.Fatalf("blob get: exit %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(copyPath); string(b) != "hello blob\n" {
		t.Fatalf("blob get wrote %q", b)
	}
	code, out, _ = c.run("blob", "stat", hash, "--json")
	var st struct {
		Hash   string `json:"hash"`
		Size   int64  `json:"size"`
		Inline bool   `json:"inline"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Hash != hash || st.Size != 11 || !st.Inline {
		t.Fatalf("blob stat --json: exit %d %v %s", code, err, out)
	}

	big := filepath.Join(dir, "big.bin")
	os.WriteFile(big, make([]byte, 1<<20), 0o644)
	code, _, errOut = c.run("blob", "put", big)
	if code != 2 || !strings.Contains(errOut, "storage peers") {
		t.Fatalf("a 1 MiB put on a one-peer grid: exit %d, stderr %q: want a clear not-enough-peers error", code, errOut)
	}
}

// TestCLI_UsageErrorsSayWhatWasWrong: a command line that is wrong in a way
// the flag package cannot see (a missing required flag) prints what was
// wrong, not just an exit code.
func TestCLI_UsageErrorsSayWhatWasWrong(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--server"}, "agent needs --data-dir"},
		{[]string{"agent", "--data-dir", t.TempDir()}, "agent needs --server, --worker or both"},
		{[]string{"job", "results", "some-job"}, "--out DIR is required"},
	} {
		var errb bytes.Buffer
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(string) string { return "" }}
		if code := m.Run(context.Background(), tc.args); code != exitError || !strings.Contains(errb.String(), "peergrid: "+tc.want) {
			t.Fatalf("%v: exit %d, stderr %q: want exit %d saying %q", tc.args, code, errb.String(), exitError, tc.want)
		}
	}
}

// TestCLI_ACLTokensAndTheJoinLine: acl token create --json prints the
// secret once with id, role and name; list shows no secret; the worker
// token's join line names the servers, the token and the CA fingerprint,
// and with just those a worker joins; a revoked token is refused saying so.
func TestCLI_ACLTokensAndTheJoinLine(t *testing.T) {
	c := newCLI(t)
	code, out, errOut := c.run("acl", "token", "create", "--role", "submitter", "--name", "alice", "--json")
	var sub struct{ ID, Secret, Role, Name string }
	if code != 0 || json.Unmarshal([]byte(out), &sub) != nil || sub.Secret == "" || sub.Role != "submitter" || sub.Name != "alice" {
		t.Fatalf("create --json: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := c.run("acl", "token", "list"); code != 0 || !strings.Contains(out, sub.ID) || strings.Contains(out, sub.Secret) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	code, out, errOut = c.run("acl", "token", "create", "--role", "worker", "--name", "lab")
	if code != 0 {
		t.Fatalf("create worker: exit %d %s", code, errOut)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "PEERGRID_TOKEN=") {
			line = l
		}
	}
	env, cmd, _ := strings.Cut(line, " peergrid agent --worker ")
	flags := map[string]string{"--token": strings.TrimPrefix(env, "PEERGRID_TOKEN=")}
	fields := strings.Fields(cmd)
	for i := 0; i+1 < len(fields); i += 2 {
		flags[fields[i]] = fields[i+1]
	}
	if flags["--servers"] != c.grid.Addr || flags["--token"] == "" || flags["--ca-fingerprint"] != c.grid.CAFingerprint || strings.Contains(cmd, "--token") {
		t.Fatalf("join line %q (from %q), want the token in the environment, the servers and the CA fingerprint", line, out)
	}
	joiner := client.New(flags["--servers"], flags["--token"])
	joiner.Pin(auth.Pin{Fingerprint: flags["--ca-fingerprint"]})
	if _, err := joiner.JoinWorker(context.Background(), &api.WorkerJoinRequest{Name: "volunteer"}); err != nil {
		t.Fatalf("joining with the join line's token and CA: %v", err)
	}

	if code, _, errOut := c.run("acl", "token", "revoke", sub.ID); code != 0 {
		t.Fatalf("revoke: exit %d %s", code, errOut)
	}
	if code, _, errOut := c.run("job", "list", "--token", sub.Secret); code == 0 || !strings.Contains(errOut, "revoked") {
		t.Fatalf("job list with the revoked token: exit %d %q", code, errOut)
	}
}

// TestCLI_WrongOrMissingCAIsRefusedSayingSo: with a fingerprint of another
// CA, or none, the CLI sends nothing and says what to fix.
func TestCLI_WrongOrMissingCAIsRefusedSayingSo(t *testing.T) {
	c := newCLI(t)
	wrong := "sha256:" + strings.Repeat("0", 64)
	if code, _, errOut := c.run("job", "list", "--ca-fingerprint", wrong); code == 0 || !strings.Contains(errOut, wrong) || !strings.Contains(errOut, "CA") {
		t.Fatalf("a wrong fingerprint: exit %d %q", code, errOut)
	}
	var out, errb bytes.Buffer
	env := map[string]string{"PEERGRID_ADDR": c.grid.Addr, "PEERGRID_TOKEN": c.grid.Token}
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	if code := m.Run(context.Background(), []string{"job", "list"}); code == 0 || !strings.Contains(errb.String(), "PEERGRID_CA_FINGERPRINT") {
		t.Fatalf("no CA: exit %d %q", code, errb.String())
	}
}

// TestCLI_ResubmitIsTakenFromTheCache: the same job file submitted again
// completes from the result cache, job status says so task by task, and
// the results written are the first run's, byte for byte.
func TestCLI_ResubmitIsTakenFromTheCache(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, examples.Tiny(), "name = \"echo\"\nmodule = \"m.wasm\"\nargs = [\"{index}\", \"{count}\"]\ntasks = 3\n")
	var ids []string
	for range 2 {
		code, out, errOut := c.run("job", "submit", job, "--wait", "--json")
		var submitted struct{ ID, State string }
		if err := json.Unmarshal([]byte(out), &submitted); code != 0 || err != nil || submitted.State != "complete" {
			t.Fatalf("submit --wait exit %d: %s %s (%v)", code, out, errOut, err)
		}
		ids = append(ids, submitted.ID)
	}
	code, out, _ := c.run("job", "status", ids[1])
	if code != 0 || !strings.Contains(out, "3 done at submit from the result cache") ||
		!strings.Contains(out, "done (cached from job "+ids[0]+" task 2)") {
		t.Fatalf("status of the resubmit (exit %d) does not show its cached tasks:\n%s", code, out)
	}
	if code, out, _ := c.run("job", "status", ids[0]); code != 0 || strings.Contains(out, "cached") {
		t.Fatalf("status of the first run (exit %d) claims cached tasks:\n%s", code, out)
	}
	var dirs []string
	for _, id := range ids {
		dir := filepath.Join(t.TempDir(), "out")
		if code, _, errOut := c.run("job", "results", id, "--out", dir); code != 0 {
			t.Fatalf("results exit %d: %s", code, errOut)
		}
		dirs = append(dirs, dir)
	}
	for i := range 3 {
		a, errA := os.ReadFile(filepath.Join(dirs[0], itoa(i)+".out"))
		b, errB := os.ReadFile(filepath.Join(dirs[1], itoa(i)+".out"))
		if errA != nil || errB != nil || !bytes.Equal(a, b) || string(a) != itoa(i)+" 3\n" {
			t.Fatalf("task %d: first %q (%v), cached %q (%v)", i, a, errA, b, errB)
		}
	}
}
