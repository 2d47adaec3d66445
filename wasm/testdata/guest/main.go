// Command guest prints what a task could use to tell runs apart: the time,
// elapsed time across a sleep, random numbers from math/rand/v2 and
// crypto/rand, float math, map order, a GC'd workload, args and env. In peergrid's
// sandbox every line must be the same on every run with the same seed.
package main

import (
	"crypto/rand"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	start := time.Now()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		fmt.Fprintln(os.Stderr, "crypto/rand:", err)
		os.Exit(1)
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Printf("now=%d\n", start.UnixNano())
	fmt.Printf("elapsed=%d\n", time.Since(start))
	fmt.Printf("rand=%d %d\n", mrand.Uint64(), mrand.IntN(1000))
	fmt.Printf("crypto=%x\n", secret)
	fmt.Printf("float=%v\n", math.Sin(1.234)*math.Exp(2.5)/math.Sqrt(7)+math.Pow(1.0001, 1e5))
	fmt.Printf("map=%s\n", mapOrder())
	fmt.Printf("work=%d\n", work())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("gc=%d\n", ms.NumGC)
	fmt.Printf("args=%q\n", os.Args)
	fmt.Printf("env=%q\n", os.Environ())
	fmt.Fprintln(os.Stderr, "guest done")
}

// mapOrder is the iteration order of a map, which Go randomizes per process.
func mapOrder() string {
	m := map[int]bool{}
	for i := 0; i < 16; i++ {
		m[i] = true
	}
	var b strings.Builder
	for k := range m {
		fmt.Fprintf(&b, "%d,", k)
	}
	return b.String()
}

// work allocates enough (8 MiB a round) to make the guest's GC run.
func work() int {
	total := 0
	for round := 0; round < 4; round++ {
		s := make([]int, 1<<20)
		for i := range s {
			s[i] = (i*7919 + round) % 100_003
		}
		total += s[len(s)/3] + s[len(s)-1]
	}
	return total
}
