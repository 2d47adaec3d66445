package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is one child process. Its stdout and stderr go to a log file that is
// dumped into the test log if the test fails.
type Proc struct {
	Name    string
	Args    []string
	LogPath string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, set before done closes
}

// Start runs the peergrid binary with args as a child process named name
// (the name only labels its log). The process is killed when the test ends.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartCommand(t, name, Binary(t), args...)
}

// StartCommand runs any program as a child process, like Start.
func StartCommand(t testing.TB, name, program string, args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(logDir(t), sanitize(name)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "### %s %s\n", program, strings.Join(args, " "))
	cmd := exec.Command(program, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	p := &Proc{Name: name, Args: args, LogPath: logPath, t: t, cmd: cmd, done: make(chan struct{})}
	if err := spawn(cmd); err != nil {
		t.Fatalf("proctest: start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.cleanup)
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill9 sends SIGKILL to the process alone (a crash: its own children must
// notice by themselves) and waits until it is gone.
func (p *Proc) Kill9() {
	p.t.Helper()
	if p.Exited() {
		return
	}
	if err := p.cmd.Process.Kill(); err != nil && !p.Exited() {
		p.t.Fatalf("proctest: kill -9 %s: %v", p.Name, err)
	}
	<-p.done
}

// Signal sends sig (SIGTERM, SIGINT, ...) to the process.
func (p *Proc) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (nil for exit 0, an *exec.ExitError otherwise).
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit code once exited (-1 if killed by a signal or running).
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

func (p *Proc) cleanup() {
	if !p.Exited() {
		killGroup(p.cmd.Process)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.t.Errorf("proctest: %s (pid %d) did not die", p.Name, p.Pid())
		}
	} else {
		killGroup(p.cmd.Process) // children it left behind, if any
	}
	if p.t.Failed() {
		b, _ := os.ReadFile(p.LogPath)
		p.t.Logf("--- log of %s (%s):\n%s", p.Name, p.LogPath, lastLines(b, 80))
	}
}

// Run runs the peergrid binary to completion (a CLI command) and returns
// its stdout, its stderr and its exit status.
func Run(ctx context.Context, t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = sysProcAttr()
	if err := spawn(cmd); err != nil {
		return "", "", err
	}
	err = cmd.Wait()
	return out.String(), errb.String(), err
}

var logDirs sync.Map // testing.TB -> string

// KeepLogsIn writes the logs of the processes t starts from now on into dir
// (made if missing), which outlives the test, instead of a temp dir removed
// with it: for a test that must leave its evidence behind when it fails.
func KeepLogsIn(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, loaded := logDirs.Swap(t, dir); !loaded {
		t.Cleanup(func() { logDirs.Delete(t) })
	}
}

// logDir is one directory per test for its processes' logs.
func logDir(t testing.TB) string {
	if d, ok := logDirs.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	if actual, loaded := logDirs.LoadOrStore(t, d); loaded {
		return actual.(string)
	}
	t.Cleanup(func() { logDirs.Delete(t) })
	return d
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, name)
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago: bound to ":0", then closed. A child process binds it next.
//
// The kernel may hand a just-closed port out again, so FreeAddr never
// returns an address it returned before in this test binary: two servers
// of one cluster once got the same port (one's HTTPS, the other's Raft),
// and the second could not start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("proctest: no loopback port not handed out before, in 100 tries")
	return ""
}

// handedOut is every address FreeAddr has returned in this test binary.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// spawner starts every child from one goroutine locked to its own OS
// thread that never exits: on Linux a child's parent-death signal fires when
// the thread that forked it exits, not the process, so children must be forked
// from a thread that lives as long as the test binary.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until the process ends
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.err
}

// Eventually polls cond every 20ms until it holds, failing the test with
// what after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

var errTimeout = errors.New("timed out")

func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errTimeout
		case <-tick.C:
		}
	}
	return nil
}
