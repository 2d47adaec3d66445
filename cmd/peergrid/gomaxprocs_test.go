package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/internal/runtimepolicy"
	"github.com/peergrid/peergrid/internal/testcluster"
)

// TestAgent_AWorkerRunsOnTheCPUsNotDonated: `peergrid agent --worker`
// runs with GOMAXPROCS by the worker rule while it works, and puts back
// what it found when it stops (it ran in this test's process).
func TestAgent_AWorkerRunsOnTheCPUsNotDonated(t *testing.T) {
	c := newCLI(t)
	found := runtime.GOMAXPROCS(runtime.NumCPU() + 1) // what no rule gives
	defer runtime.GOMAXPROCS(found)
	env := map[string]string{"PEERGRID_TOKEN": c.grid.Token, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	var logs syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		m := &Main{Stdout: &syncBuffer{}, Stderr: &logs, Getenv: func(k string) string { return env[k] }}
		done <- m.Run(ctx, []string{"agent", "--worker", "--data-dir", shortTempDir(t), "--servers", c.grid.Addr, "--cores", "1"})
	}()
	want := runtimepolicy.WorkerGOMAXPROCS(1, runtime.NumCPU())
	testcluster.Eventually(t, 30*time.Second, "the worker logs its GOMAXPROCS", func() bool {
		return strings.Contains(logs.String(), fmt.Sprintf("gomaxprocs=%d ", want))
	})
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS %d while a worker of 1 core runs on %d CPUs, want %d\n%s", got, runtime.NumCPU(), want, logs.String())
	}
	stop()
	<-done
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU()+1 {
		t.Fatalf("GOMAXPROCS %d after the worker stopped, want the %d it found", got, runtime.NumCPU()+1)
	}
}

// TestAgent_ALoneServerFollowsItsLoadFromOneP: a server donates no CPU
// and, idle, needs less than a core: it runs at 1 P (after any start-up
// burst), says so, and puts back what it found when it stops (it ran in
// this test's process). The loop's raising and lowering are
// internal/runtimepolicy's tests.
func TestAgent_ALoneServerFollowsItsLoadFromOneP(t *testing.T) {
	found := runtime.GOMAXPROCS(runtime.NumCPU() + 1) // what no rule gives
	defer runtime.GOMAXPROCS(found)
	addr, dir, args := agentArgs(t, "--log-level", "info")
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	m := &Main{Stdout: &syncBuffer{}, Stderr: &logs, Getenv: func(string) string { return "" }}
	go func() { done <- m.Run(ctx, args) }()
	var c *client.Client
	testcluster.Eventually(t, 30*time.Second, "the server serves", func() bool {
		if c == nil {
			if c = pinnedAgentClient(addr, "tok", dir); c == nil {
				return false
			}
		}
		_, err := c.StorageConfig(context.Background())
		return err == nil
	})
	if !strings.Contains(logs.String(), fmt.Sprintf("gomaxprocs=1 cpus=%d", runtime.NumCPU())) {
		t.Fatalf("a lone server did not log its start at 1 P:\n%s", logs.String())
	}
	testcluster.Eventually(t, 60*time.Second, "an idle lone server runs at 1 P", func() bool {
		return runtime.GOMAXPROCS(0) == 1
	})
	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU()+1 {
		t.Fatalf("GOMAXPROCS %d after the server stopped, want the %d it found", got, runtime.NumCPU()+1)
	}
}

// TestDev_ProcessRunsOnTheCPUsNotDonatedUnlessTheUserSaysSo: the
// `peergrid dev --cores 2` process logs the GOMAXPROCS the worker rule
// gives it, read back from its runtime; with GOMAXPROCS in its
// environment, that one.
func TestDev_ProcessRunsOnTheCPUsNotDonatedUnlessTheUserSaysSo(t *testing.T) {
	bin := proctest.Binary(t)
	rule := runtimepolicy.WorkerGOMAXPROCS(2, runtime.NumCPU())
	for _, c := range []struct {
		env  string
		want string
	}{
		{"", fmt.Sprintf(`gomaxprocs=%d cpus=%d donated=2`, rule, runtime.NumCPU())},
		{"GOMAXPROCS=3", `gomaxprocs=3 GOMAXPROCS=3`},
	} {
		line := devGOMAXPROCSLine(t, bin, c.env)
		if !strings.Contains(line, c.want) {
			t.Errorf("peergrid dev --cores 2 with %q in its environment logged %q, want %q in it", c.env, line, c.want)
		}
	}
}

// devGOMAXPROCSLine runs `peergrid dev --cores 2` with env (besides this
// process's, GOMAXPROCS taken out) and returns its log line of
// GOMAXPROCS.
func devGOMAXPROCSLine(t *testing.T, bin, env string) string {
	t.Helper()
	dev := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--bind", "127.0.0.1:0", "--cores", "2", "--storage-peers", "0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			dev.Env = append(dev.Env, kv)
		}
	}
	if env != "" {
		dev.Env = append(dev.Env, env)
	}
	stderr, err := dev.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = dev.Process.Signal(syscall.SIGINT)
		if err := dev.Wait(); err != nil {
			t.Errorf("peergrid dev: %v", err)
		}
	}()
	line, ready := make(chan string, 1), make(chan struct{})
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() { // to the end, or dev blocks on a full pipe
			switch {
			case gomaxprocsLine.MatchString(s.Text()):
				line <- s.Text()
			case strings.HasPrefix(s.Text(), "Ctrl-C stops it"):
				close(ready) // signals from now on stop a running grid
			}
		}
	}()
	timeout := time.After(60 * time.Second)
	select {
	case <-ready:
	case <-timeout:
		t.Fatal("peergrid dev did not start within 60 s")
	}
	select {
	case l := <-line:
		return l
	default:
		t.Fatal("peergrid dev started without logging its GOMAXPROCS")
	}
	return ""
}

var gomaxprocsLine = regexp.MustCompile(`msg=.GOMAXPROCS.* gomaxprocs=\d+`)
