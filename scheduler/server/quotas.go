package server

import (
	"net/http"

	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
)

// checkPinQuota refuses a pinned manifest past its owner's pinned bytes
// quota. Apply enforces every other quota, but manifest commands predate
// quotas and an old log's must apply as committed, so the leader checks
// this one before proposing. Two pins racing may both pass: the excess is
// bounded by one blob per concurrent request.
func (s *Server) checkPinQuota(r *http.Request, m *storage.Manifest, pin bool) error {
	if !pin {
		return nil
	}
	var err error
	s.store.FSM().View(func(l *ledger.Ledger) { err = l.CheckPinQuota(owner(r), m.Hash, m.Size) })
	return err
}
