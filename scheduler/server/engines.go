package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/wasm"
)

// The grid's engine choice per module (issue 15). Every worker's accepted
// reports carry the engine and the run time of each task; the leader folds
// them, in its memory and off the Apply path (no ledger cost per report),
// into a wasm.EngineChooser with the same rules a worker's pool uses, run
// as a Learner: it hands out no trials, it watches the ones workers run
// while they still choose for themselves. Once it settles on a module (or
// changes its mind) it commits one SetModuleEngineCommand; assignments of
// "auto" jobs then name that engine, and workers that have it run it
// without trials of their own.
//
// A worker's reported duration is its own word. A decision needs runs
// reported by at least minEngineReporters distinct workers; a duration
// under minCredibleRun or longer than the task's timeout (it would have
// been killed) is ignored, as are an engine the worker does not offer and
// the runs of a worker that offers only one. A
// liar can still report short runs on a slow engine and steer a module to
// it (its tasks then run slower, by the factor between engines: 2-3x at
// worst here), or report tiny runs so that the grid waits for trials no
// honest worker gives (workers then keep choosing for themselves, as
// before issue 15). It can never make a task run wrong: every engine gives
// the same bytes, and results are accepted as before.

// minEngineReporters: one worker's word decides nothing for the grid.
const minEngineReporters = 2

// gridTrials is how many runs of each engine worth trying the grid waits
// for, as a worker's pool does (the first run may pay for cold caches).
const gridTrials = 2

// minCredibleRun: no engine starts and runs even an empty module faster
// (wazero's floor here is tens of microseconds); a shorter run is a lie
// that would otherwise win every comparison.
const minCredibleRun = time.Microsecond

// engineSetTTL is how long the leader keeps the workers' engines it read
// from the ledger before it reads them again (a scan of every peer).
const engineSetTTL = 5 * time.Second

// gridEngines is the leader's memory of how fast each module ran where.
// It is rebuilt, empty, when the engines the alive workers offer change
// (the chooser's first engine depends on them); only its outcomes are
// committed. A new leader starts with none and learns from the reports it
// gets; what it learns agrees with the ledger's choice or, once it is
// sure, replaces it.
type gridEngines struct {
	mu      sync.Mutex
	chooser *wasm.EngineChooser // nil while fewer than two engines are offered
	engines []string            // what chooser picks among
	readAt  time.Time           // when engines was read from the ledger

	// committing is held across a choice's proposal, so that choices are
	// committed one at a time, each the chooser's latest: two reports
	// proposing what the chooser said at two moments could otherwise
	// commit the older last.
	committing sync.Mutex
}

func newGridEngines() *gridEngines { return &gridEngines{} }

// engineRun is one accepted report as the chooser sees it.
type engineRun struct {
	module, engine string
	took           time.Duration
}

// learnEngines folds a worker's accepted reports into the grid's choice
// and commits any module's choice that is new. Errors are logged: a lost
// proposal is made again at the next report of the module.
func (s *Server) learnEngines(ctx context.Context, worker string, reports []api.Report, accepted []bool) {
	due, idle := s.engines.due(time.Now())
	if idle {
		return // one engine on the grid, read less than engineSetTTL ago: nothing to learn
	}
	runs, offered := s.engineRuns(worker, reports, accepted, due)
	c := s.engines.chooserFor(offered, time.Now())
	if c == nil || len(runs) == 0 {
		return
	}
	var touched []string
	for _, r := range runs {
		c.ObserveFrom(r.module, r.engine, worker, r.took)
		if !slices.Contains(touched, r.module) {
			touched = append(touched, r.module)
		}
	}
	for _, module := range touched {
		if engine, ok := c.Chosen(module, 0); ok && engine != s.moduleEngine(module) {
			s.commitModuleEngine(ctx, c, module)
		}
	}
}

func (s *Server) moduleEngine(module string) string {
	var e string
	s.store.FSM().View(func(l *ledger.Ledger) { e = l.ModuleEngine(module) })
	return e
}

// engineRuns reads, under one ledger view, the runs among reports worth
// learning from, and the engines the alive workers offer (when due).
func (s *Server) engineRuns(worker string, reports []api.Report, accepted []bool, due bool) (runs []engineRun, offered []string) {
	s.store.FSM().View(func(l *ledger.Ledger) {
		if due {
			offered = l.WorkerEngines()
		}
		p, _ := l.Peer(worker)
		for i, rep := range reports {
			if i >= len(accepted) || !accepted[i] {
				continue
			}
			spec, ok := l.JobSpec(rep.Job)
			if ok && credibleRun(rep, spec.Timeout, p.Engines) {
				runs = append(runs, engineRun{module: spec.ModuleHash, engine: rep.Engine, took: rep.Duration})
			}
		}
	})
	return runs, offered
}

// credibleRun reports whether a report's run time may count: the module
// ran to its end (a non-zero exit counts, as in a worker's pool), on an
// engine its worker offers, in a time a real run can take. A worker that
// offers one engine teaches nothing: it had no choice, and its runs
// measure its machine more than its engine (a cgo-free worker on a fast
// machine would otherwise move every worker to wazero).
func credibleRun(rep api.Report, timeout time.Duration, offers []string) bool {
	ran := rep.ErrorKind == "" || rep.ErrorKind == string(wasm.KindExit)
	return ran && len(offers) >= 2 && slices.Contains(offers, rep.Engine) &&
		rep.Duration >= minCredibleRun && rep.Duration <= timeout
}

// due reports whether the workers' engines should be read again (a scan
// of every peer, so at most once per engineSetTTL), and idle whether there
// is nothing to do until then: the grid offered fewer than two engines
// when last read. Before both were kept, a grid of one engine scanned
// every peer on every report: half the leader's CPU at 10,000 workers.
func (g *gridEngines) due(now time.Time) (due, idle bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	due = g.readAt.IsZero() || now.Sub(g.readAt) >= engineSetTTL
	return due, !due && g.chooser == nil
}

// chooserFor returns the chooser, made anew if offered (nil: not read this
// time) differs from the engines it was made for; nil while the grid has
// fewer than two engines, where there is nothing to choose.
func (g *gridEngines) chooserFor(offered []string, now time.Time) *wasm.EngineChooser {
	g.mu.Lock()
	defer g.mu.Unlock()
	if offered == nil {
		return g.chooser
	}
	g.readAt = now
	if g.chooser != nil && slices.Equal(offered, g.engines) {
		return g.chooser
	}
	g.engines, g.chooser = offered, nil
	if len(offered) >= 2 {
		g.chooser = wasm.NewEngineChooser(offered, gridTrials)
		g.chooser.Learner, g.chooser.MinReporters = true, minEngineReporters
	}
	return g.chooser
}

// commitModuleEngine commits the chooser's latest choice for module
// unless the ledger has it.
func (s *Server) commitModuleEngine(ctx context.Context, c *wasm.EngineChooser, module string) {
	s.engines.committing.Lock()
	defer s.engines.committing.Unlock()
	engine, ok := c.Chosen(module, 0)
	current := s.moduleEngine(module)
	if !ok || engine == current {
		return
	}
	resp, err := s.store.Propose(ctx, &ledger.SetModuleEngineCommand{Module: module, Engine: engine})
	if rerr, ok := resp.(error); ok && err == nil {
		err = rerr
	}
	if err != nil {
		if !errors.Is(err, ledger.ErrBlobMissing) { // the module's jobs were purged meanwhile
			s.log.Warn("grid engine choice not committed", "module", module, "engine", engine, "err", err)
		}
		return
	}
	s.log.Info("grid engine chosen", "module", module, "engine", engine, "was", current)
}
