package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100}, {10 << 20, 100}, {64 << 20, 100}, {96 << 20, 66}, {128 << 20, 50}, {1 << 30, 50}, {1 << 40, 50},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("live heap %d MiB: GC percent %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// TestGCPolicy_FollowsTheLiveHeapAndPutsBackWhatItFound: the GC percent
// follows the live heap it reads, and is what it was once the policy
// stops.
func TestGCPolicy_FollowsTheLiveHeapAndPutsBackWhatItFound(t *testing.T) {
	found := debug.SetGCPercent(137)
	defer debug.SetGCPercent(found)
	var live atomic.Uint64
	live.Store(256 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runGCPolicy(ctx, 5*time.Millisecond, live.Load)
	}()
	defer func() { cancel(); <-done }()
	wantGCPercent(t, 50)
	live.Store(96 << 20)
	wantGCPercent(t, 66)
	live.Store(8 << 20)
	wantGCPercent(t, 100)
	cancel()
	<-done
	if got := gcPercent(); got != 137 {
		t.Fatalf("GC percent %d after the policy stopped, want the 137 it found", got)
	}
}

// TestGCPolicy_UsersEnvironmentWins: with GOGC or GOMEMLIMIT set, no
// policy runs.
func TestGCPolicy_UsersEnvironmentWins(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a policy that starts stops at once
	for _, env := range []map[string]string{{"GOGC": "200"}, {"GOMEMLIMIT": "2GiB"}, {"GOGC": "off", "GOMEMLIMIT": "1GiB"}, {}} {
		started := startGCPolicy(ctx, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
		if want := len(env) == 0; started != want {
			t.Errorf("environment %v: policy started %v, want %v", env, started, want)
		}
	}
}

func wantGCPercent(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d, want %d", gcPercent(), want)
		}
		time.Sleep(5 * time.Millisecond) // polling the runtime's setting
	}
}

// gcPercent is the GC percent in force (what GOGC would say).
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
