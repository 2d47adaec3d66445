package ledger

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/peergrid/peergrid/tasks"
)

// The grid's engine choice per module. The leader learns, from the
// workers' task reports and off the Apply path, which engine runs a module
// fastest (scheduler/server: engines.go); when it settles, or changes its
// mind, it commits one SetModuleEngineCommand. Assignments of "auto" jobs
// then name that engine (api.Assignment.GridEngine), so a worker runs it
// without trials of its own. The ledger keeps only the outcome (module
// hash -> engine), a few dozen bytes per module, and only for modules a
// job still uses: a purge that drops a module's last job drops its choice.

// cmdSetModuleEngine records the grid's engine for a module
// (SetModuleEngineCommand). Not ignorable: a server that skipped it would
// hand out assignments, and hash a state, that the others do not.
const cmdSetModuleEngine CommandType = 33

// recModuleEngine is a snapshot record: one module's engine choice. It
// takes its command's number, so records other work adds after
// recCredential do not collide with it.
const recModuleEngine byte = 33

// SetModuleEngineCommand sets the engine the grid runs Module's "auto"
// tasks on. Apply refuses an engine that is not a runnable engine's name
// and a module no job uses (ErrBadCommand, ErrBlobMissing); it changes
// nothing then.
type SetModuleEngineCommand struct {
	Module string `json:"module"`
	Engine string `json:"engine"`
}

func (*SetModuleEngineCommand) Type() CommandType { return cmdSetModuleEngine }

func init() {
	commandTypes[cmdSetModuleEngine] = func() Command { return &SetModuleEngineCommand{} }
}

// ModuleEngine is one module's engine choice, as a snapshot record.
type ModuleEngine struct {
	Module string `json:"module"`
	Engine string `json:"engine"`
}

func (l *Ledger) applySetModuleEngine(c *SetModuleEngineCommand) any {
	if c.Engine == tasks.EngineAuto || !slices.Contains(tasks.Engines, c.Engine) {
		return fmt.Errorf("%w: module %s: engine %q is not one of wazero, wasmtime, wasmer", ErrBadCommand, c.Module, c.Engine)
	}
	if !l.refs.used(c.Module) {
		return fmt.Errorf("%w: module %s: no job uses it", ErrBlobMissing, c.Module)
	}
	if l.moduleEngines == nil {
		l.moduleEngines = map[string]string{}
	}
	l.moduleEngines[c.Module] = c.Engine
	return nil
}

// forgetModuleEngine drops module's choice once no job uses it (a purge
// took its last job), which bounds the map by the jobs the ledger holds.
func (l *Ledger) forgetModuleEngine(module string) {
	if !l.refs.used(module) {
		delete(l.moduleEngines, module)
	}
}

// ModuleEngine is the grid's engine for module's "auto" tasks, or "" while
// it has none.
func (l *Ledger) ModuleEngine(module string) string { return l.moduleEngines[module] }

// gridEngine is what an assignment of j names as the grid's engine: the
// module's choice for an "auto" job, nothing for a job that names its own.
func (l *Ledger) gridEngine(j *job) string {
	if j.Spec.Engine != "" && j.Spec.Engine != tasks.EngineAuto {
		return ""
	}
	return l.moduleEngines[j.Spec.ModuleHash]
}

func (l *Ledger) frozenModuleEngines() []ModuleEngine {
	out := make([]ModuleEngine, 0, len(l.moduleEngines))
	for _, m := range sortedKeys(l.moduleEngines) {
		out = append(out, ModuleEngine{Module: m, Engine: l.moduleEngines[m]})
	}
	return out
}

func (fz *Snapshot) writeModuleEngines(rw *recordWriter) {
	for i := range fz.moduleEngines {
		rw.put(recModuleEngine, &fz.moduleEngines[i])
	}
}

func (l *Ledger) restoreModuleEngine(body []byte) error {
	var m ModuleEngine
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("%w: module engine: %v", ErrBadSnapshot, err)
	}
	if l.moduleEngines == nil {
		l.moduleEngines = map[string]string{}
	}
	l.moduleEngines[m.Module] = m.Engine
	return nil
}

// WorkerEngines lists the engines the alive workers offer between them,
// sorted: what the grid's engine choice picks among.
func (l *Ledger) WorkerEngines() []string {
	out := []string{} // not nil: the leader tells "none" apart from "not read"
	for _, p := range l.peers {
		if !p.IsAliveWorker() {
			continue
		}
		for _, e := range p.Engines {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	slices.Sort(out)
	return out
}
