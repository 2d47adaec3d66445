package prefs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is one entry of a schedule: days of the week and a time of day,
// in local time. "Mon-Fri 18:00-08:00" starts on each of Monday..Friday at
// 18:00 and runs past midnight to 08:00 the next morning; "Sat-Sun" is all
// of Saturday and Sunday; "09:00-17:00" is every day.
type Window struct {
	Days       [7]bool // by time.Weekday; the day a window starts on
	Start, End int     // minutes after midnight; End <= Start runs past midnight
	AllDay     bool
	text       string
}

func (w Window) String() string { return w.text }

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseSchedule reads schedule windows; errors name the window.
func ParseSchedule(entries []string) ([]Window, error) {
	out := make([]Window, 0, len(entries))
	for _, e := range entries {
		w, err := parseWindow(e)
		if err != nil {
			return nil, fmt.Errorf("window %q: %w", e, err)
		}
		out = append(out, w)
	}
	return out, nil
}

func parseWindow(s string) (Window, error) {
	w := Window{text: strings.Join(strings.Fields(s), " ")}
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return w, errors.New(`want "DAYS", "HH:MM-HH:MM" or "DAYS HH:MM-HH:MM", e.g. "Mon-Fri 18:00-08:00"`)
	}
	daySpec, timeSpec := fields[0], ""
	if len(fields) == 2 {
		timeSpec = fields[1]
	} else if strings.Contains(daySpec, ":") {
		daySpec, timeSpec = "", fields[0]
	}
	if err := w.parseDays(daySpec); err != nil {
		return w, err
	}
	if timeSpec == "" {
		w.AllDay = true
		return w, nil
	}
	from, to, ok := strings.Cut(timeSpec, "-")
	if !ok {
		return w, fmt.Errorf("time %q: want HH:MM-HH:MM", timeSpec)
	}
	var err error
	if w.Start, err = clock(from); err != nil {
		return w, err
	}
	w.End, err = clock(to)
	return w, err
}

func (w *Window) parseDays(spec string) error {
	if spec == "" {
		w.Days = [7]bool{true, true, true, true, true, true, true}
		return nil
	}
	from, to, isRange := strings.Cut(spec, "-")
	first, ok := dayNames[strings.ToLower(from)]
	if !ok {
		return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", from)
	}
	last := first
	if isRange {
		if last, ok = dayNames[strings.ToLower(to)]; !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", to)
		}
	}
	for d := first; ; d = (d + 1) % 7 { // a range may wrap: "Fri-Mon"
		w.Days[d] = true
		if d == last {
			return nil
		}
	}
}

// clock reads HH:MM (24:00 is the end of the day) as minutes after midnight.
func clock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM from 00:00 to 24:00", s)
	}
	return hh*60 + mm, nil
}

// Contains reports whether t (in its own location) is inside the window.
func (w Window) Contains(t time.Time) bool {
	d, m := t.Weekday(), t.Hour()*60+t.Minute()
	yesterday := (d + 6) % 7
	switch {
	case w.AllDay:
		return w.Days[d]
	case w.Start < w.End:
		return w.Days[d] && m >= w.Start && m < w.End
	}
	return (w.Days[d] && m >= w.Start) || (w.Days[yesterday] && m < w.End)
}

// InSchedule reports whether t is inside any window; an empty schedule is
// always open.
func InSchedule(ws []Window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// NextOpen is the first minute at or after t inside the schedule, looking
// a week and a day ahead; false if there is none (a schedule of no time).
func NextOpen(ws []Window, t time.Time) (time.Time, bool) {
	t = t.Truncate(time.Minute)
	for i := 0; i < 8*24*60; i++ {
		if InSchedule(ws, t) {
			return t, true
		}
		t = t.Add(time.Minute)
	}
	return time.Time{}, false
}
