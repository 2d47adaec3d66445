// Command pi is a peergrid example task: a Monte Carlo estimate of pi. It
// draws SAMPLES points in the unit square from a splitmix64 generator seeded
// by INDEX and prints how many fell inside the quarter circle, then SAMPLES:
//
//	usage: pi INDEX SAMPLES
//	output: "HITS SAMPLES\n"
//
// The generator is written out here, not taken from math/rand, so that a
// verifier can replay it exactly; and the test for a hit is integer
// arithmetic, so every platform gives the same bytes. pi ~ 4*sum(HITS)/sum(SAMPLES).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 3 {
		usage("want 2 arguments")
	}
	index, err := strconv.ParseUint(os.Args[1], 10, 64)
	if err != nil {
		usage(err.Error())
	}
	samples, err := strconv.ParseUint(os.Args[2], 10, 64)
	if err != nil {
		usage(err.Error())
	}
	fmt.Printf("%d %d\n", hits(index, samples), samples)
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "pi: %s\nusage: pi INDEX SAMPLES\n", msg)
	os.Exit(2)
}

// seedMix spreads task indexes apart: the generator for task i starts at
// state i*gamma ^ seedMix.
const (
	gamma   = 0x9e3779b97f4a7c15
	seedMix = 0x5045455247524944 // "PEERGRID"
)

// hits counts the points (x, y), each coordinate a 31-bit integer from one
// splitmix64 draw (x the high 31 bits, y the low 31), with x*x + y*y < 2^62.
func hits(index, samples uint64) uint64 {
	state := index*gamma ^ seedMix
	var n uint64
	for i := uint64(0); i < samples; i++ {
		state += gamma
		z := state
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		x, y := z>>33, z&(1<<31-1)
		if x*x+y*y < 1<<62 {
			n++
		}
	}
	return n
}
