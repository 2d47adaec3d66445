package worker

import "github.com/peergrid/peergrid/worker/control"

// listenControl serves the control socket, if the Volunteer config names
// one. A socket that cannot be made is logged, not fatal: the worker still
// works, only `peergrid worker status|pause|resume|prefs` cannot reach it.
func (r *run) listenControl() *control.Server {
	if r.vol == nil || r.vol.cfg.ControlSocket == "" {
		return nil
	}
	s, err := control.Listen(r.vol.cfg.ControlSocket, r.vol, r.w.log)
	if err != nil {
		r.w.log.Warn("no control socket", "err", err)
		return nil
	}
	r.w.log.Info("control socket", "path", s.Path())
	return s
}
