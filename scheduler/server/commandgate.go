package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/peergrid/peergrid/scheduler/ledger"
)

// The command gate keeps a leader from proposing a command type some server
// of the group cannot apply: a server stops at an unknown type rather than
// skip it. The leader proposes leases and completions in their compact shape
// (ledger.CompactCommandTypes) only while every server in the Raft
// configuration, voter or not (both apply the log), and every server that
// has asked to join, has said it applies those types; otherwise, and until
// it has heard them all, it proposes the JSON shapes every server applies.
// Nomad gates new message types the same way (ServersMeetMinimumVersion).
//
// Each server says what it applies in its self description (GET
// /v1/cluster/self, api.ServerInfo.CommandTypes) and in its join request. A
// server too old to say is taken to apply only the old types. The gate
// serves a rolling upgrade: once compact entries are in the log, a server
// without them (downgraded, or an old one joining) stops at the first it
// replays, so upgrade servers, never downgrade or add older ones.
const (
	// gateInterval is how often the leader checks the group.
	gateInterval = time.Second
	// gateTrust is how long a server's yes stands before it is asked again;
	// a no (or no answer) is asked again every round.
	gateTrust = 30 * time.Second
	// gateAskTimeout bounds one server's answer.
	gateAskTimeout = 2 * time.Second
)

// commandGate is what the leader has heard from each server.
type commandGate struct {
	// round is held while a round decides, and while a join is noted, so
	// a round that began before a join cannot turn compact commands on
	// after the join turned them off.
	round sync.Mutex
	mu    sync.Mutex
	heard map[string]gateAnswer // server id ->
}

type gateAnswer struct {
	types   []int
	at      time.Time
	joining bool // from a join request: counts as a member while trusted
}

func newCommandGate() *commandGate { return &commandGate{heard: map[string]gateAnswer{}} }

func (g *commandGate) note(id string, types []int, now time.Time, joining bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.heard[id] = gateAnswer{types: types, at: now, joining: joining}
}

// noteJoining notes what a server asking to join applies, before it is
// added: from then on the gate counts it as a member, and if it does not
// apply the compact types the leader stops proposing them at once.
func (s *Server) noteJoining(id string, types []int, now time.Time) {
	s.gate.round.Lock()
	defer s.gate.round.Unlock()
	s.gate.note(id, types, now, true)
	if !appliesCompact(types) {
		s.store.SetCompactCommands(false)
	}
}

// trustedYes reports whether id said, recently enough, that it applies the
// compact types.
func (g *commandGate) trustedYes(id string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.heard[id]
	return ok && now.Sub(a.at) < gateTrust && appliesCompact(a.types)
}

// joiners are the servers that asked to join within gateTrust.
func (g *commandGate) joiners(now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for id, a := range g.heard {
		if a.joining && now.Sub(a.at) < gateTrust {
			out = append(out, id)
		}
	}
	return out
}

func appliesCompact(types []int) bool {
	return ledger.AppliesAll(types, ledger.CompactCommandTypes())
}

// commandTypes is what this server says it applies.
func (s *Server) commandTypes() []int {
	if s.cfg.CommandTypes != nil {
		return s.cfg.CommandTypes
	}
	return ledger.KnownCommandTypes()
}

// commandGateLoop runs while this server leads: it turns the store's
// compact proposals on while every server applies them, and off when one
// does not (or cannot be heard), and when leadership ends.
func (s *Server) commandGateLoop(ctx context.Context) {
	defer s.store.SetCompactCommands(false)
	t := time.NewTicker(gateInterval)
	defer t.Stop()
	for {
		s.gateRound(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) gateRound(ctx context.Context, now time.Time) {
	s.gate.round.Lock()
	defer s.gate.round.Unlock()
	on := s.everyServerAppliesCompact(ctx, now)
	if on != s.store.CompactCommands() {
		s.log.Info("compact ledger commands", "on", on)
	}
	s.store.SetCompactCommands(on && ctx.Err() == nil)
}

func (s *Server) everyServerAppliesCompact(ctx context.Context, now time.Time) bool {
	f := s.store.Raft().GetConfiguration()
	if f.Error() != nil {
		return false
	}
	ids := s.gate.joiners(now)
	for _, srv := range f.Configuration().Servers {
		ids = append(ids, string(srv.ID))
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if !s.serverAppliesCompact(ctx, id, now) {
			return false
		}
	}
	return len(ids) > 0
}

// serverAppliesCompact asks id what it applies unless it said yes recently.
func (s *Server) serverAppliesCompact(ctx context.Context, id string, now time.Time) bool {
	if id == s.cfg.Store.ID {
		return appliesCompact(s.commandTypes())
	}
	if s.gate.trustedYes(id, now) {
		return true
	}
	addr := s.serverHTTPAddr(id)
	if addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, gateAskTimeout)
	defer cancel()
	info, err := s.client(addr).ServerInfo(ctx)
	if err != nil || info.ID != id {
		return false
	}
	s.gate.note(id, info.CommandTypes, now, false)
	return appliesCompact(info.CommandTypes)
}
