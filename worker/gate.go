package worker

import (
	"context"
	"sync"
)

// gate holds back new work while the volunteer's preferences stop the
// worker (see volunteer.go): the lease loop waits for it to open, and a
// runner about to start a leased task waits too, or hands the task back
// once the pause has kept it for pause_keep.
type gate struct {
	mu      sync.Mutex
	mode    gateMode
	changed chan struct{} // closed and replaced on every change
	// openCtx is cancelled when the gate leaves gateOpen, to cut short a
	// lease long poll that would bring tasks the worker cannot start.
	openCtx    context.Context
	openCancel context.CancelFunc
}

type gateMode int

const (
	gateOpen     gateMode = iota
	gateClosed            // paused: wait
	gateHandBack          // paused past pause_keep: hand tasks back
)

func newGate() *gate {
	g := &gate{changed: make(chan struct{})}
	g.openCtx, g.openCancel = context.WithCancel(context.Background())
	return g
}

func (g *gate) set(m gateMode) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode == m {
		return
	}
	if g.mode == gateOpen {
		g.openCancel()
	}
	if m == gateOpen {
		g.openCtx, g.openCancel = context.WithCancel(context.Background())
	}
	g.mode = m
	close(g.changed)
	g.changed = make(chan struct{})
}

// state is the mode, a channel closed at its next change, and the context
// cancelled when the gate leaves open.
func (g *gate) state() (gateMode, <-chan struct{}, context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode, g.changed, g.openCtx
}

// waitOpen blocks while the gate is not open; it returns a context that
// ends when ctx does or the gate closes again, and false if ctx ended.
func (g *gate) waitOpen(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	for {
		mode, changed, open := g.state()
		if mode == gateOpen {
			c, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(open, cancel)
			return c, func() { stop(); cancel() }, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, false
		}
	}
}

// waitToStart blocks while the gate is closed; it says whether to start a
// task (open) or hand it back (paused past pause_keep, or stop closed: a
// drain).
func (g *gate) waitToStart(stop <-chan struct{}) (start bool) {
	for {
		mode, changed, _ := g.state()
		switch mode {
		case gateOpen:
			return true
		case gateHandBack:
			return false
		}
		select {
		case <-changed:
		case <-stop:
			return false
		}
	}
}
