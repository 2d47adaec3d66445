package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// TestCLI_FailedJobShowsItsFirstFailures: `submit --wait`, `job wait` and
// `job status` end a failed job with its first failures (index, kind,
// message, the last lines of stderr, control characters escaped) and the
// commands that show the rest.
func TestCLI_FailedJobShowsItsFirstFailures(t *testing.T) {
	c := newCLI(t)
	stderr := "reading input\nline 1 ok\nline 2 ok\nline 3 ok\nline 4 ok\nbad value on line 7\x1b[2J\n"
	job := writeJob(t, wasmtest.Hello("", stderr, 3), "name = \"fails\"\nmodule = \"m.wasm\"\ntasks = 5\nretries = 0\n")
	code, out, errOut := c.run("job", "submit", job, "--wait")
	if code != exitJobFailed {
		t.Fatalf("exit %d, want %d: %s %s", code, exitJobFailed, out, errOut)
	}
	id := strings.Fields(out)[2]
	_, _, waitOut := c.run("job", "wait", id)
	_, statusOut, statusErr := c.run("job", "status", id)
	for name, said := range map[string]string{"submit --wait": errOut, "job wait": waitOut, "job status": statusOut + statusErr} {
		for _, want := range []string{
			"5 task(s) failed; the first 3:",
			"task 0: exit: ", "task 1: exit: ", "task 2: exit: ",
			"    | bad value on line 7\\x1b[2J",
			"all tasks: peergrid job status " + id + "; every stderr: peergrid job results " + id + " --out DIR",
		} {
			if !strings.Contains(said, want) {
				t.Errorf("%s does not say %q:\n%s", name, want, said)
			}
		}
		if strings.Contains(said, "task 3: exit") || strings.Contains(said, "reading input") || strings.Contains(said, "\x1b") {
			t.Errorf("%s shows more than the first 3 failures' last 5 lines, or a raw escape:\n%s", name, said)
		}
	}
}

// TestCLI_CtrlCStopsWaitingNotTheJob: interrupting `job wait` says the job
// keeps running and how to follow or cancel it, exits 130, and the job is
// still running.
func TestCLI_CtrlCStopsWaitingNotTheJob(t *testing.T) {
	c := newCLI(t)
	job := writeJob(t, wasmtest.LoopForever(), "name = \"spin\"\nmodule = \"m.wasm\"\ntasks = 1\ntimeout = \"1m\"\n")
	code, out, _ := c.run("job", "submit", job, "--json")
	var sub struct{ ID string }
	if err := json.Unmarshal([]byte(out), &sub); code != exitOK || err != nil {
		t.Fatalf("submit: exit %d %q", code, out)
	}
	t.Cleanup(func() { c.run("job", "cancel", sub.ID) })

	var stdout, stderr bytes.Buffer
	env := map[string]string{"PEERGRID_ADDR": c.grid.Addr, "PEERGRID_TOKEN": c.grid.Token, "PEERGRID_CA_FINGERPRINT": c.grid.CAFingerprint}
	lw := &lockedWriter{w: &stderr}
	m := &Main{Stdout: &stdout, Stderr: lw, Getenv: func(k string) string { return env[k] }}
	ctx, interrupt := context.WithCancel(context.Background()) // what main's signal.NotifyContext does on Ctrl-C
	defer interrupt()
	done := make(chan int)
	go func() { done <- m.Run(ctx, []string{"job", "wait", sub.ID}) }()
	deadline := time.Now().Add(30 * time.Second)
	for !lw.contains("leased to workers") { // the progress bar: it is waiting
		if time.Now().After(deadline) {
			t.Fatalf("no progress bar within 30s: %q", lw.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	interrupt()
	code = <-done
	said := lw.String()
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, said)
	}
	for _, want := range []string{"job " + sub.ID + " keeps running", "peergrid job wait " + sub.ID, "peergrid job cancel " + sub.ID} {
		if !strings.Contains(said, want) {
			t.Errorf("Ctrl-C does not say %q:\n%s", want, said)
		}
	}
	_, out, _ = c.run("job", "status", sub.ID, "--json")
	if !strings.Contains(out, `"state": "running"`) && !strings.Contains(out, `"state": "queued"`) {
		t.Fatalf("the job did not keep running: %s", out)
	}
}

// lockedWriter is a buffer a command writes to while the test reads it.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) contains(s string) bool { return strings.Contains(l.String(), s) }
