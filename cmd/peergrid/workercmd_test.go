package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/worker/control"
	"github.com/peergrid/peergrid/worker/prefs"
)

// runMain runs the CLI in-process with env as its environment.
func runMain(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

func installDryRun(t *testing.T, goos string) (string, string) {
	t.Helper()
	units := t.TempDir()
	code, out, errOut := runMain(t, nil, "worker", "install", "--dry-run", "--os", goos, "--data-dir", "/home/vol/.peergrid",
		"--servers", "http://10.0.0.1:7070", "--token", "s3cret-token", "--binary", "/usr/local/bin/peergrid", "--cores", "2", "--unit-dir", units)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "s3cret-token") {
		t.Errorf("the dry run printed the token:\n%s", out)
	}
	if entries, _ := os.ReadDir(units); len(entries) != 0 {
		t.Errorf("the dry run wrote %v", entries)
	}
	return out, units
}

// TestWorkerInstall_DryRunSystemdUnit: the dry run prints the user unit,
// the environment file (token hidden), the systemctl commands and the
// undo, and writes nothing; the unit passes systemd-analyze verify where
// systemd-analyze is installed.
func TestWorkerInstall_DryRunSystemdUnit(t *testing.T) {
	out, units := installDryRun(t, "linux")
	for _, want := range []string{
		"would write /home/vol/.peergrid/worker.env (mode 0600):\nPEERGRID_SERVERS=http://10.0.0.1:7070\nPEERGRID_TOKEN=<hidden>\n",
		"would write " + filepath.Join(units, systemdUnitName) + " (mode 0644):\n[Unit]\n",
		"ExecStart=/usr/local/bin/peergrid agent --worker --data-dir /home/vol/.peergrid --cores 2\n",
		"EnvironmentFile=/home/vol/.peergrid/worker.env\n",
		"WantedBy=default.target\n",
		"would run: systemctl --user daemon-reload\nwould run: systemctl --user enable --now peergrid-worker.service\n",
		"loginctl enable-linger",
		"To undo:\n  systemctl --user disable --now peergrid-worker.service\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	verifyUnit(t)
}

// verifyUnit writes the unit of a plan for this test binary and checks it
// with systemd-analyze verify, which must accept it without a warning.
func verifyUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit file is not verified")
		return
	}
	exe, _ := os.Executable()
	dir := t.TempDir()
	plan := systemdPlan(&installFlags{dataDir: dir, servers: "http://127.0.0.1:7070", token: "t", binary: exe, unitDir: dir, cores: 1})
	for _, f := range plan.files {
		if err := os.WriteFile(f.path, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	unit := filepath.Join(dir, systemdUnitName)
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), systemdUnitName) {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

func TestSystemdQuote(t *testing.T) {
	for in, want := range map[string]string{"/usr/bin/peergrid": "/usr/bin/peergrid", "/My Files/pg": `"/My Files/pg"`, `a"b$c`: `"a\"b$$c"`} {
		if got := systemdQuote(in); got != want {
			t.Errorf("systemdQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWorkerInstall_DryRunLaunchdAgent: the plist is well-formed XML with
// the label, the program's arguments and a background process type.
func TestWorkerInstall_DryRunLaunchdAgent(t *testing.T) {
	out, units := installDryRun(t, "darwin")
	plistPath := filepath.Join(units, launchdLabel+".plist")
	head := "would write " + plistPath + " (mode 0600):\n"
	i := strings.Index(out, head)
	if i < 0 {
		t.Fatalf("no plist in:\n%s", out)
	}
	plist := out[i+len(head) : i+len(head)+strings.Index(out[i+len(head):], "</plist>\n")+len("</plist>\n")]
	dec := xml.NewDecoder(strings.NewReader(plist))
	dec.Strict = true
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("plist is not well-formed: %v\n%s", err, plist)
		}
	}
	for _, want := range []string{"<string>org.peergrid.worker</string>", "<string>/usr/local/bin/peergrid</string>", "<string>--worker</string>",
		"<string>Background</string>", "<string>&lt;hidden&gt;</string>", "would run: launchctl bootstrap gui/", "launchctl bootout"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
}

func TestWorkerInstall_WindowsPrintsTheSteps(t *testing.T) {
	out, _ := installDryRun(t, "windows")
	if !strings.Contains(out, "schtasks /Create /TN peergrid-worker /SC ONLOGON") || !strings.Contains(out, "To undo:") {
		t.Fatalf("windows steps:\n%s", out)
	}
}

// squeeze makes runs of spaces one, as tabwriter's padding varies.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// shortTempDir is a temp dir whose path fits a unix socket.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pgcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestWorkerCommands_StatusPauseResumePrefs: a worker agent started with
// preference flags answers `worker status`, `pause`, `resume` and `prefs
// --set` through its control socket, in text and JSON.
func TestWorkerCommands_StatusPauseResumePrefs(t *testing.T) {
	c := newCLI(t)
	dir := shortTempDir(t)
	env := map[string]string{"PEERGRID_TOKEN": c.grid.Token, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
		done <- m.Run(ctx, []string{"agent", "--worker", "--name", "vol", "--data-dir", dir, "--servers", c.grid.Addr, "--cores", "1",
			"--max-cpu", "50", "--pause-keep", "20m", "--executor-priority", "normal", "--log-level", "error"})
	}()
	defer func() { stop(); <-done }()

	sock := filepath.Join(dir, control.SocketName)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := control.Call(context.Background(), sock, control.Request{Op: "status"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's control socket never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errOut := runMain(t, nil, "worker", "status", "--data-dir", dir)
	out = squeeze(out)
	if code != 0 || !strings.Contains(out, "worker vol") || !strings.Contains(out, "throttled to 50% of the CPU") ||
		!strings.Contains(out, "max_cpu=50") || !strings.Contains(out, "pause_keep=20m0s") || !strings.Contains(out, "today") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = runMain(t, nil, "worker", "pause", "--data-dir", dir); code != 0 || !strings.Contains(out, "paused by `peergrid worker pause`") {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	code, out, _ = runMain(t, nil, "worker", "status", "--data-dir", dir, "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.State != "paused" {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	if code, out, _ = runMain(t, nil, "worker", "resume", "--data-dir", dir); code != 0 || !strings.Contains(out, "running") {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	code, out, _ = runMain(t, nil, "worker", "prefs", "--data-dir", dir, "--set", "max_cpu=30", "--set", "schedule=Mon-Fri 18:00-08:00, Sat-Sun")
	if out = squeeze(out); code != 0 || !strings.Contains(out, "max_cpu 30") || !strings.Contains(out, "Mon-Fri 18:00-08:00, Sat-Sun") {
		t.Fatalf("prefs --set: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, prefs.FileName)); !strings.Contains(string(b), `schedule = ["Mon-Fri 18:00-08:00", "Sat-Sun"]`) {
		t.Errorf("prefs.toml after --set:\n%s", b)
	}
	if code, _, errOut = runMain(t, nil, "worker", "prefs", "--data-dir", dir, "--set", "run_when=sometimes"); code == 0 || !strings.Contains(errOut, `run_when = "sometimes"`) {
		t.Fatalf("a bad --set: exit %d, %s", code, errOut)
	}
}

// TestWorkerPrefs_WithoutAWorkerWritesTheFile: with nothing running,
// `worker prefs --set` edits prefs.toml for the next start, and says so.
func TestWorkerPrefs_WithoutAWorkerWritesTheFile(t *testing.T) {
	dir := shortTempDir(t)
	code, out, errOut := runMain(t, nil, "worker", "prefs", "--data-dir", dir, "--set", "run_when=idle", "--set", "idle_after=10m")
	if code != 0 || !strings.Contains(errOut, "no worker is running") || !strings.Contains(squeeze(out), "idle_after 10m0s") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	p := prefs.Default()
	if err := prefs.LoadFile(filepath.Join(dir, prefs.FileName), &p); err != nil || p.RunWhen != "idle" || p.IdleAfter != 10*time.Minute {
		t.Fatalf("prefs.toml: %+v %v", p, err)
	}
	if code, _, errOut = runMain(t, nil, "worker", "status", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "no worker is running") {
		t.Fatalf("status without a worker: exit %d, %s", code, errOut)
	}
}

// TestAgent_PreferenceFlagErrorsNameTheFlag: a bad preference flag stops
// the agent before it starts, naming the key and the value.
func TestAgent_PreferenceFlagErrorsNameTheFlag(t *testing.T) {
	code, _, errOut := runMain(t, nil, "agent", "--worker", "--data-dir", t.TempDir(), "--servers", "http://127.0.0.1:1", "--token", "t", "--max-cpu", "150")
	if code != exitError || !strings.Contains(errOut, `max_cpu = "150": want a whole percent from 1 to 100`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, prefs.FileName), []byte("on_battery = \"never\"\n"), 0o600)
	code, _, errOut = runMain(t, nil, "agent", "--worker", "--data-dir", dir, "--servers", "https://127.0.0.1:1", "--token", "t",
		"--ca-fingerprint", "sha256:"+strings.Repeat("0", 64))
	if code != exitError || !strings.Contains(errOut, `prefs.toml: on_battery = "never"`) {
		t.Fatalf("bad prefs.toml: exit %d: %s", code, errOut)
	}
}
