// Package prefs is a volunteer's say over the machine it donates: the
// preferences (run only when idle, a CPU cap, a schedule, not on battery,
// pause while the machine is busy, memory and disk limits, how long a pause
// keeps its tasks), their parsing from flags, prefs.toml and `worker prefs
// --set KEY=VALUE` with errors that name the key and the value, and the
// policy: Decide, a pure function of the preferences and one Observation of
// the machine (the time, idle time, battery, other programs' CPU use, an
// explicit pause), which says whether the worker runs, waits or is paused,
// and why, in words for `worker status`.
//
// It owns the platform sources the observation is read from, each behind a
// small interface (IdleSource, BatterySource, LoadSource) with a Linux
// implementation, macOS and Windows ones where the OS answers without cgo,
// and an honest "cannot read" elsewhere: Decide treats an idle time it
// cannot read as a busy machine, a battery it cannot read as mains power,
// and a load it cannot read as no load, and the worker says so at start.
//
// It knows nothing of the grid, the worker or executors: the worker reads
// the sources, calls Decide and acts on the Decision.
package prefs
