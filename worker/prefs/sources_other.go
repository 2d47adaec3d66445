//go:build !linux && !darwin && !windows

package prefs

// SystemSources: no source is read on this platform. run_when = idle then
// treats the machine as in use, and on_battery and pause_when_busy do
// nothing.
func SystemSources() Sources {
	return Sources{Describe: map[string]string{
		"idle":    "cannot be read on this platform; run_when = idle treats the machine as in use",
		"battery": "cannot be read on this platform", "load": "cannot be read on this platform",
	}}
}
