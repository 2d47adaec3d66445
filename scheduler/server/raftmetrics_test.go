package server

import (
	"slices"
	"testing"
)

func TestSnakeCase_RaftKeysBecomePrometheusNames(t *testing.T) {
	for in, want := range map[string]string{
		"commitTime": "commit_time", "appendEntriesRPC": "append_entries_rpc", "fsm": "fsm",
		"rpcType": "rpc_type", "lastContact": "last_contact", "numLogs2": "num_logs2", "dispatchLog": "dispatch_log",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
	if got := counterKey([]string{"raft", "state", "candidate"}); !slices.Equal(got, []string{"raft", "state", "candidate", "total"}) {
		t.Errorf("counter key %v", got)
	}
}
