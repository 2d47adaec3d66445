package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/peergrid/peergrid/api"
)

// progressBar draws one line that redraws in place on a terminal, and prints
// a line only when the counts change elsewhere (logs, CI).
type progressBar struct {
	w    io.Writer
	tty  bool
	last string
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, tty: tty}
}

func (p *progressBar) update(s *api.JobSummary) {
	line := renderProgress(s, 30)
	if line == p.last {
		return
	}
	p.last = line
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progressBar) finish() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

func renderProgress(s *api.JobSummary, width int) string {
	finished := s.Done + s.Failed
	filled := 0
	if s.Tasks > 0 {
		filled = finished * width / s.Tasks
	}
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	// "leased", not "running": the ledger knows which tasks a worker holds,
	// not which it has started (a worker leases ahead of its free cores).
	return fmt.Sprintf("[%s] %d/%d done, %d failed, %d leased to workers, %d queued  %s", bar, s.Done, s.Tasks, s.Failed, s.Leased, s.Queued, s.State)
}
