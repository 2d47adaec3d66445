package worker

import (
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/wasm"
)

// TestRunRequest_AutoJobRunsTheGridsEngineWhereTheWorkerHasIt: an "auto"
// assignment naming the grid's engine runs on it (no trials of the pool's
// own); a worker without that engine, and a job that names its own,
// run as they would without it.
func TestRunRequest_AutoJobRunsTheGridsEngineWhereTheWorkerHasIt(t *testing.T) {
	all := []string{wasm.EngineWazero, wasm.EngineWasmtime}
	for _, tc := range []struct {
		name    string
		a       api.Assignment
		engines []string
		want    string
	}{
		{"auto, grid chose wasmtime", api.Assignment{Engine: "auto", GridEngine: "wasmtime"}, all, "wasmtime"},
		{"empty engine is auto", api.Assignment{GridEngine: "wazero"}, all, "wazero"},
		{"cgo-free worker", api.Assignment{Engine: "auto", GridEngine: "wasmtime"}, []string{wasm.EngineWazero}, "auto"},
		{"no grid choice yet", api.Assignment{Engine: "auto"}, all, "auto"},
		{"job names its engine", api.Assignment{Engine: "wazero", GridEngine: "wasmtime"}, all, "wazero"},
	} {
		if got := runRequest(tc.a, tc.engines).Engine; got != tc.want {
			t.Errorf("%s: engine %q, want %q", tc.name, got, tc.want)
		}
	}
}
