//go:build race

package devgrid

// raceEnabled: this test binary (and so every executor child) is built
// with the race detector, whose shadow memory adds to a process's size.
const raceEnabled = true
