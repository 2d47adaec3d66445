package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's headroom in the long-running processes
// (`peergrid dev` and `peergrid agent`), issue 15.
//
// Go's default, GOGC=100, lets the heap grow to twice the live heap before
// a collection. That is nothing for a worker's few MiB, but a server's
// ledger is most of its heap (about 100 bytes of live heap a finished
// task), so a grid that ran a million tasks would hold twice that in RSS.
// The policy: the heap may grow past the live heap by 64 MiB or by half
// the live heap, whichever is more, and never by more than Go's default.
// So below 64 MiB of live heap nothing changes (GOGC=100); from 128 MiB
// it is GOGC=50; in between the 64 MiB stays. The live heap is read every
// second (runtime/metrics), and the GC percent set when it changes.
//
// Measured (BENCHMARKS.md, "Issue 15: resident memory per finished
// task"; 1,000,000 tiny tasks through `peergrid dev` under load 5-20):
// 193-229 bytes of RSS a finished task with the policy (six runs),
// 235-267 with GOGC=100 (three runs, one over issue 15's 250), 335-369
// before the ledger shrank; the dev process's CPU a task, 66-79 µs with
// it and 69-84 without, is the same within this machine's noise. A
// collection's work is the live heap it marks, and with half the headroom
// there are twice as many, so only a large heap pays, and it is the one
// that needs it. A fixed GOGC=50 would make every worker collect twice as
// often for nothing; a memory limit would have to be guessed per machine.
//
// A user's own GOGC or GOMEMLIMIT wins: with either set, the policy does
// nothing and the runtime does what the user asked.

const (
	gcHeadroomFloor = 64 << 20 // bytes the heap may always grow by
	gcPercentFloor  = 50       // the headroom is at least half the live heap
	gcPercentGo     = 100      // Go's default, and the most the policy sets
	gcPolicyEvery   = time.Second
)

// gcPercentFor is the GC percent that gives a live heap of live bytes its
// headroom: max(gcHeadroomFloor, live/2), at most live.
func gcPercentFor(live uint64) int {
	if live <= gcHeadroomFloor {
		return gcPercentGo
	}
	return int(max(gcHeadroomFloor*100/live, gcPercentFloor))
}

// startGCPolicy runs the policy until ctx ends, unless getenv has GOGC or
// GOMEMLIMIT, and says whether it does; at the end it puts back the GC
// percent it found.
func startGCPolicy(ctx context.Context, getenv func(string) string, log *slog.Logger) bool {
	if v, m := getenv("GOGC"), getenv("GOMEMLIMIT"); v != "" || m != "" {
		log.Debug("GC headroom as the environment sets it", "GOGC", v, "GOMEMLIMIT", m)
		return false
	}
	go runGCPolicy(ctx, gcPolicyEvery, liveHeap)
	return true
}

func runGCPolicy(ctx context.Context, every time.Duration, live func() uint64) {
	found := debug.SetGCPercent(gcPercentGo)
	defer debug.SetGCPercent(found)
	set := gcPercentGo
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if p := gcPercentFor(live()); p != set {
			debug.SetGCPercent(p)
			set = p
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// liveHeap is the heap the last collection marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0 // a runtime without the metric: Go's default stays
	}
	return s[0].Value.Uint64()
}
