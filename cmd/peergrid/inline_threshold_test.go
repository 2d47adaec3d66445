package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/internal/testcluster"
)

// agentArgs are a lone server's flags on free loopback ports, and its
// data dir.
func agentArgs(t *testing.T, more ...string) (addr, dir string, args []string) {
	addr, dir = proctest.FreeAddr(t), t.TempDir()
	return addr, dir, append([]string{"agent", "--server", "--data-dir", dir, "--bind", addr,
		"--raft-bind", proctest.FreeAddr(t), "--token", "tok"}, more...)
}

// TestAgent_InlineThresholdFlagIsValidated: --inline-threshold outside
// (0, 32 MiB] is refused before the agent starts, naming the flag; a valid
// one is the threshold the server serves to clients and workers.
func TestAgent_InlineThresholdFlagIsValidated(t *testing.T) {
	for _, bad := range []string{"0", "-1", "33554433"} {
		var errb bytes.Buffer
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(string) string { return "" }}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, _, args := agentArgs(t, "--inline-threshold", bad)
		code := m.Run(ctx, args)
		cancel()
		if code != exitError || !strings.Contains(errb.String(), "--inline-threshold") || !strings.Contains(errb.String(), "at most 33554432") {
			t.Fatalf("--inline-threshold %s: exit %d, stderr %q: want exit %d naming the flag and its range", bad, code, errb.String(), exitError)
		}
	}
	var errb bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := m.Run(context.Background(), []string{"agent", "--server", "--data-dir", t.TempDir(), "--inline-threshold", "16KiB"}); code != exitError {
		t.Fatalf("--inline-threshold 16KiB: exit %d, want %d (bytes only)", code, exitError)
	}

	addr, dir, args := agentArgs(t, "--inline-threshold", "4096")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	m = &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	go func() { done <- m.Run(ctx, args) }()
	defer func() {
		cancel()
		<-done
	}()
	var c *client.Client
	testcluster.Eventually(t, 30*time.Second, "the server serves its inline threshold", func() bool {
		if c == nil {
			if c = pinnedAgentClient(addr, "tok", dir); c == nil {
				return false
			}
		}
		cfg, err := c.StorageConfig(context.Background())
		return err == nil && cfg.InlineThreshold == 4096
	})
}
