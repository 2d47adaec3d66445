package ledger

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

func (a *applier) moduleEngine(module string) string {
	var e string
	a.fsm.View(func(l *Ledger) { e = l.ModuleEngine(module) })
	return e
}

// TestLedger_ModuleEngineIsHandedOutForAutoJobsOnly: once the grid's engine
// for a module is set, an "auto" job's assignments and status name it; a
// job that names its own engine gets none; a later choice replaces it.
func TestLedger_ModuleEngineIsHandedOutForAutoJobsOnly(t *testing.T) {
	a := newApplier(t)
	module := storage.Hash(testModule)
	a.submit("auto", 4, 0, 0)
	named := tasks.JobSpec{Name: "named", ModuleHash: module, Tasks: 4, Timeout: 1e9, Memory: 1 << 20, MaxOutput: 1 << 10, Engine: tasks.EngineWazero}
	if resp := a.apply(&SubmitJobCommand{ID: "named", Spec: named, Now: a.now}); resp != "named" {
		t.Fatal(resp)
	}
	if g := a.lease("w1", 1); len(g) != 1 || a.gridEngineOf(g[0]) != "" {
		t.Fatalf("an assignment named a grid engine before any was set: %+v", g)
	}
	if resp := a.apply(&SetModuleEngineCommand{Module: module, Engine: tasks.EngineWasmtime}); resp != nil {
		t.Fatal(resp)
	}
	for _, g := range a.lease("w1", 7) {
		want := tasks.EngineWasmtime
		if g.Job == "named" {
			want = ""
		}
		if got := a.gridEngineOf(g); got != want {
			t.Fatalf("job %s task %d: grid engine %q, want %q", g.Job, g.Index, got, want)
		}
	}
	var st, stNamed string
	a.fsm.View(func(l *Ledger) {
		s, _ := l.JobStatus("auto")
		n, _ := l.JobStatus("named")
		st, stNamed = s.GridEngine, n.GridEngine
	})
	if st != tasks.EngineWasmtime || stNamed != "" {
		t.Fatalf("job status grid engine: auto %q, named %q", st, stNamed)
	}
	a.apply(&SetModuleEngineCommand{Module: module, Engine: tasks.EngineWazero})
	if e := a.moduleEngine(module); e != tasks.EngineWazero {
		t.Fatalf("after a change: %q", e)
	}
}

// gridEngineOf is the grid engine g's assignment names.
func (a *applier) gridEngineOf(g Grant) string {
	var e string
	a.fsm.View(func(l *Ledger) { e = l.Assignment(g).GridEngine })
	return e
}

// TestLedger_BadModuleEngineChangesNothing: an engine that is not a
// runnable engine's name, and a module no job uses, are refused with the
// reason, and the choice already committed stays.
func TestLedger_BadModuleEngineChangesNothing(t *testing.T) {
	a := newApplier(t)
	module := storage.Hash(testModule)
	a.submit("j1", 1, 0, 0)
	a.apply(&SetModuleEngineCommand{Module: module, Engine: tasks.EngineWasmtime})
	before := a.fsm.StateHash()
	for _, tc := range []struct {
		cmd  SetModuleEngineCommand
		want error
	}{
		{SetModuleEngineCommand{Module: module, Engine: tasks.EngineAuto}, ErrBadCommand},
		{SetModuleEngineCommand{Module: module, Engine: "v8"}, ErrBadCommand},
		{SetModuleEngineCommand{Module: module, Engine: ""}, ErrBadCommand},
		{SetModuleEngineCommand{Module: storage.Hash([]byte("no job runs me")), Engine: tasks.EngineWazero}, ErrBlobMissing},
	} {
		err, _ := a.apply(&tc.cmd).(error)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%+v: %v, want %v", tc.cmd, err, tc.want)
		}
	}
	if a.fsm.StateHash() != before || a.moduleEngine(module) != tasks.EngineWasmtime {
		t.Fatal("a refused command changed the ledger")
	}
}

// TestLedger_PurgingAModulesLastJobDropsItsEngine bounds the choices by
// the jobs the ledger holds.
func TestLedger_PurgingAModulesLastJobDropsItsEngine(t *testing.T) {
	a := newApplier(t)
	module := storage.Hash(testModule)
	for _, id := range []string{"j1", "j2"} {
		a.submit(id, 1, 0, 0)
		a.complete("w1", a.lease("w1", 1)[0], "")
	}
	a.apply(&SetModuleEngineCommand{Module: module, Engine: tasks.EngineWasmtime})
	a.apply(&PurgeJobCommand{ID: "j1"})
	if e := a.moduleEngine(module); e != tasks.EngineWasmtime {
		t.Fatalf("purging one of two jobs of the module dropped its engine: %q", e)
	}
	a.apply(&PurgeJobCommand{ID: "j2"})
	if e := a.moduleEngine(module); e != "" {
		t.Fatalf("the module's last job is purged, its engine %q stays", e)
	}
}

// TestSnapshot_ModuleEnginesRoundTrip: the choices survive a snapshot and
// restore (same state hash), and a snapshot from before they existed (no
// such records) still loads with none.
func TestSnapshot_ModuleEnginesRoundTrip(t *testing.T) {
	a := newApplier(t)
	module := storage.Hash(testModule)
	a.submit("j1", 1, 0, 0)
	old := snapshotInto(t, a.fsm)
	var none string
	old.View(func(l *Ledger) { none = l.ModuleEngine(module) })
	if none != "" {
		t.Fatalf("a snapshot without choices restored %q", none)
	}
	a.apply(&SetModuleEngineCommand{Module: module, Engine: tasks.EngineWazero})
	restored := snapshotInto(t, a.fsm)
	if restored.StateHash() != a.fsm.StateHash() {
		t.Fatal("state hashes differ after restore")
	}
	var got string
	restored.View(func(l *Ledger) { got = l.ModuleEngine(module) })
	if got != tasks.EngineWazero {
		t.Fatalf("restored choice %q, want wazero", got)
	}
}

// TestLedger_ModuleEngineCommandDecodes: type 33 decodes to the command,
// so a log holding it replays on every server that knows it.
func TestLedger_ModuleEngineCommandDecodes(t *testing.T) {
	body, _ := json.Marshal(map[string]string{"module": "m", "engine": "wasmtime"})
	c, err := DecodeCommand(append([]byte{33}, body...))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.(*SetModuleEngineCommand); !ok || got.Module != "m" || got.Engine != "wasmtime" {
		t.Fatalf("decoded %#v", c)
	}
	if s := cmdSetModuleEngine.String(); s != "set-module-engine" {
		t.Fatalf("String() = %q", s)
	}
}
