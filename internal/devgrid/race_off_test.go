//go:build !race

package devgrid

const raceEnabled = false
