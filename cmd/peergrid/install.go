package main

import (
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// installFlags are `peergrid worker install`'s flags.
type installFlags struct {
	dataDir, servers, token string
	cores                   int
	dryRun                  bool
	goos, binary, unitDir   string
}

// installPlan is what `worker install` does: files to write, commands to
// run, and how to undo it all.
type installPlan struct {
	files    []installFile
	commands [][]string
	notes    []string // printed after
	undo     []string
}

type installFile struct {
	path    string
	mode    os.FileMode
	content string
	secret  string // a value printed as mask
	mask    string // default "<hidden>"
}

const (
	systemdUnitName = "peergrid-worker.service"
	launchdLabel    = "org.peergrid.worker"
)

// workerInstall makes the worker a service of this user: a systemd user
// unit on Linux, a launchd agent on macOS; on Windows it prints the steps.
// It prints what it did (or, with --dry-run, would do) and how to undo it.
func (m *Main) workerInstall(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("worker install", "worker install --servers ADDRS [--token-file FILE] [--data-dir DIR] [--cores N] [--dry-run] (the token from $PEERGRID_TOKEN or --token-file)")
	var f installFlags
	home, _ := os.UserHomeDir()
	fs.StringVar(&f.dataDir, "data-dir", filepath.Join(home, ".peergrid"), "the worker's data dir (its preferences go in prefs.toml there)")
	fs.StringVar(&f.servers, "servers", "", "servers' HTTP addresses, comma-separated (default $PEERGRID_SERVERS)")
	addTokenFlags(fs, &f.token, "cluster token (default $PEERGRID_TOKEN); kept in a file only you can read")
	fs.IntVar(&f.cores, "cores", 0, "tasks run at once (default: all cores; max_cpu in prefs.toml caps their CPU)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the files and commands, change nothing")
	fs.StringVar(&f.goos, "os", runtime.GOOS, "the OS to install for (linux, darwin, windows)")
	fs.StringVar(&f.binary, "binary", "", "the peergrid binary the service runs (default: this one)")
	fs.StringVar(&f.unitDir, "unit-dir", "", "where the unit goes (default ~/.config/systemd/user, or ~/Library/LaunchAgents)")
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	if err := f.check(m, home); err != nil {
		return exitError, err
	}
	var plan installPlan
	switch f.goos {
	case "linux":
		plan = systemdPlan(&f)
	case "darwin":
		plan = launchdPlan(&f)
	case "windows":
		m.printWindowsSteps(&f)
		return exitOK, nil
	default:
		return exitError, fmt.Errorf("worker install: no service manager known for %s: run `peergrid agent --worker` from your own startup scripts", f.goos)
	}
	if f.dryRun {
		m.printPlan(&plan, true)
		return exitOK, nil
	}
	if err := plan.carryOut(ctx); err != nil {
		return exitError, err
	}
	m.printPlan(&plan, false)
	return exitOK, nil
}

func (f *installFlags) check(m *Main, home string) error {
	f.servers = firstNonEmpty(f.servers, m.Getenv("PEERGRID_SERVERS"))
	f.token = firstNonEmpty(f.token, m.Getenv("PEERGRID_TOKEN"))
	if f.servers == "" || f.token == "" {
		return fmt.Errorf("%w: worker install needs the servers (--servers or $PEERGRID_SERVERS) and a token ($PEERGRID_TOKEN or --token-file)", errUsage)
	}
	if f.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("worker install: find this binary: %w (give --binary)", err)
		}
		f.binary = exe
	}
	var err error
	if f.binary, err = filepath.Abs(f.binary); err != nil {
		return err
	}
	if f.dataDir, err = filepath.Abs(f.dataDir); err != nil {
		return err
	}
	if f.unitDir == "" {
		f.unitDir = filepath.Join(home, ".config", "systemd", "user")
		if f.goos == "darwin" {
			f.unitDir = filepath.Join(home, "Library", "LaunchAgents")
		}
	}
	return nil
}

// agentArgs are the arguments of the service's `peergrid agent`.
func (f *installFlags) agentArgs() []string {
	args := []string{"agent", "--worker", "--data-dir", f.dataDir}
	if f.cores > 0 {
		args = append(args, "--cores", strconv.Itoa(f.cores))
	}
	return args
}

// systemdPlan is a systemd user unit; the token and servers go in an
// environment file only the user can read, not on the command line.
func systemdPlan(f *installFlags) installPlan {
	envFile := filepath.Join(f.dataDir, "worker.env")
	unitPath := filepath.Join(f.unitDir, systemdUnitName)
	exec := []string{systemdQuote(f.binary)}
	for _, a := range f.agentArgs() {
		exec = append(exec, systemdQuote(a))
	}
	unit := `[Unit]
Description=peergrid volunteer worker (donates this machine's spare CPU)
Documentation=https://github.com/peergrid/peergrid#donate-your-machine
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
EnvironmentFile=` + envFile + `
ExecStart=` + strings.Join(exec, " ") + `
# SIGTERM drains: running tasks get --drain-grace (30s) to finish.
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=30
# The worker itself; its executors run at nice 19 and SCHED_IDLE.
Nice=10

[Install]
WantedBy=default.target
`
	return installPlan{
		files: []installFile{
			{path: envFile, mode: 0o600, content: "PEERGRID_SERVERS=" + f.servers + "\nPEERGRID_TOKEN=" + f.token + "\n", secret: f.token},
			{path: unitPath, mode: 0o644, content: unit},
		},
		commands: [][]string{
			{"systemctl", "--user", "daemon-reload"},
			{"systemctl", "--user", "enable", "--now", systemdUnitName},
		},
		notes: []string{
			"The worker starts when you log in. To keep it running while you are logged out: loginctl enable-linger $USER",
			"Its log: journalctl --user -u " + systemdUnitName,
			"What it is doing: peergrid worker status --data-dir " + f.dataDir,
		},
		undo: []string{
			"systemctl --user disable --now " + systemdUnitName,
			"rm " + unitPath + " " + envFile,
			"systemctl --user daemon-reload",
		},
	}
}

// systemdQuote quotes a word of ExecStart if it needs it.
func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;$%") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// launchdPlan is a launchd agent of the user, a background process.
func launchdPlan(f *installFlags) installPlan {
	plistPath := filepath.Join(f.unitDir, launchdLabel+".plist")
	logPath := filepath.Join(f.dataDir, "worker.log")
	var args strings.Builder
	for _, a := range append([]string{f.binary}, f.agentArgs()...) {
		args.WriteString("\t\t<string>" + xmlEscape(a) + "</string>\n")
	}
	plist := `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + launchdLabel + `</string>
	<key>ProgramArguments</key>
	<array>
` + args.String() + `	</array>
	<key>EnvironmentVariables</key>
	<dict>
		<key>PEERGRID_SERVERS</key>
		<string>` + xmlEscape(f.servers) + `</string>
		<key>PEERGRID_TOKEN</key>
		<string>` + xmlEscape(f.token) + `</string>
	</dict>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ProcessType</key>
	<string>Background</string>
	<key>LowPriorityIO</key>
	<true/>
	<key>ExitTimeOut</key>
	<integer>60</integer>
	<key>StandardOutPath</key>
	<string>` + xmlEscape(logPath) + `</string>
	<key>StandardErrorPath</key>
	<string>` + xmlEscape(logPath) + `</string>
</dict>
</plist>
`
	domain := "gui/" + strconv.Itoa(os.Getuid())
	return installPlan{
		files:    []installFile{{path: plistPath, mode: 0o600, content: plist, secret: xmlEscape(f.token), mask: "&lt;hidden&gt;"}},
		commands: [][]string{{"mkdir", "-p", f.dataDir}, {"launchctl", "bootstrap", domain, plistPath}},
		notes: []string{
			"The worker starts now and whenever you log in. Its log: " + logPath,
			"What it is doing: peergrid worker status --data-dir " + f.dataDir,
		},
		undo: []string{"launchctl bootout " + domain + " " + plistPath, "rm " + plistPath},
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// carryOut writes the files and runs the commands.
func (p *installPlan) carryOut(ctx context.Context) error {
	for _, f := range p.files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, []byte(f.content), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return err
		}
	}
	for _, c := range p.commands {
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("worker install: %s: %v: %s (the files are written; undo with: %s)", strings.Join(c, " "), err, strings.TrimSpace(string(out)), strings.Join(p.undo, "; "))
		}
	}
	return nil
}

func (m *Main) printPlan(p *installPlan, dryRun bool) {
	write, run := "wrote", "ran"
	if dryRun {
		write, run = "would write", "would run"
	}
	for _, f := range p.files {
		content := f.content
		if f.secret != "" {
			content = strings.ReplaceAll(content, f.secret, cmp.Or(f.mask, "<hidden>"))
		}
		fmt.Fprintf(m.Stdout, "%s %s (mode %04o):\n%s\n", write, f.path, f.mode, content)
	}
	for _, c := range p.commands {
		fmt.Fprintf(m.Stdout, "%s: %s\n", run, strings.Join(c, " "))
	}
	for _, n := range p.notes {
		fmt.Fprintln(m.Stdout, n)
	}
	fmt.Fprintln(m.Stdout, "To undo:")
	for _, u := range p.undo {
		fmt.Fprintln(m.Stdout, "  "+u)
	}
}

// printWindowsSteps says how to run the worker at logon with the Task
// Scheduler; `worker install` does not do it itself (untested there).
func (m *Main) printWindowsSteps(f *installFlags) {
	cmd := `"` + f.binary + `" ` + strings.Join(f.agentArgs(), " ")
	fmt.Fprintf(m.Stdout, `worker install does not change Windows itself. To run the worker when you log on:

  1. Keep the token where only you can read it, as user environment variables:
       setx PEERGRID_SERVERS "%s"
       setx PEERGRID_TOKEN "<your token>"
  2. Create a task that starts the worker at logon, at below-normal priority:
       schtasks /Create /TN peergrid-worker /SC ONLOGON /RL LIMITED /TR "%s"
  3. Start it now:  schtasks /Run /TN peergrid-worker
     What it is doing:  peergrid worker status --data-dir %s

Run it in your own session (not as a service): idle time is only seen there.
To undo:
  schtasks /Delete /TN peergrid-worker /F
  setx PEERGRID_TOKEN ""
`, f.servers, strings.ReplaceAll(cmd, `"`, `\"`), f.dataDir)
}
