package main

import (
	"strings"
	"testing"

	"github.com/peergrid/peergrid/api"
)

// TestProgress_CountsLeasedAsLeased: the bar says what the ledger knows: a
// task a worker holds is "leased to workers", not "running" (a 2-core
// worker holding 16 leases showed "16 running"), beside those queued.
func TestProgress_CountsLeasedAsLeased(t *testing.T) {
	line := renderProgress(&api.JobSummary{Tasks: 40, Done: 10, Failed: 2, Leased: 16, Queued: 12, State: "running"}, 20)
	want := "[######..............] 10/40 done, 2 failed, 16 leased to workers, 12 queued  running"
	if line != want {
		t.Fatalf("progress %q, want %q", line, want)
	}
	if strings.Contains(line, "16 running") {
		t.Fatalf("leased tasks shown as running: %q", line)
	}
}
