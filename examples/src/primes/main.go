// Command primes is a peergrid example task: it counts the primes in one
// slice of [0, LIMIT) and prints the count. Task INDEX of COUNT covers
// [INDEX*LIMIT/COUNT, (INDEX+1)*LIMIT/COUNT), so the job's tasks together
// cover [0, LIMIT) whatever COUNT is.
//
//	usage: primes INDEX COUNT LIMIT
//
// It uses a segmented sieve: the primes up to sqrt(hi) strike out their
// multiples in [lo, hi) only. It uses the standard library only, so it builds
// for GOOS=wasip1 and for the host alike.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	index, count, limit, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "primes: %v\nusage: primes INDEX COUNT LIMIT\n", err)
		os.Exit(2)
	}
	lo := index * limit / count
	hi := (index + 1) * limit / count
	fmt.Println(countPrimes(lo, hi))
}

func parseArgs(args []string) (index, count, limit uint64, err error) {
	if len(args) != 3 {
		return 0, 0, 0, fmt.Errorf("want 3 arguments, got %d", len(args))
	}
	var v [3]uint64
	for i, a := range args {
		if v[i], err = strconv.ParseUint(a, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("argument %d: %v", i+1, err)
		}
	}
	index, count, limit = v[0], v[1], v[2]
	switch {
	case count == 0 || index >= count:
		return 0, 0, 0, fmt.Errorf("index %d not below count %d", index, count)
	case limit > 1<<40:
		return 0, 0, 0, fmt.Errorf("limit %d above 2^40", limit)
	}
	return index, count, limit, nil
}

// countPrimes counts the primes p with lo <= p < hi.
func countPrimes(lo, hi uint64) int {
	if hi <= 2 || lo >= hi {
		return 0
	}
	if lo < 2 {
		lo = 2
	}
	composite := make([]bool, hi-lo) // composite[i] is lo+i
	for _, p := range smallPrimes(isqrt(hi - 1)) {
		first := max(p*p, (lo+p-1)/p*p)
		for m := first; m < hi; m += p {
			composite[m-lo] = true
		}
	}
	n := 0
	for _, c := range composite {
		if !c {
			n++
		}
	}
	return n
}

// smallPrimes returns the primes up to and including n.
func smallPrimes(n uint64) []uint64 {
	sieve := make([]bool, n+1)
	var out []uint64
	for i := uint64(2); i <= n; i++ {
		if sieve[i] {
			continue
		}
		out = append(out, i)
		for m := i * i; m <= n; m += i {
			sieve[m] = true
		}
	}
	return out
}

// isqrt is floor(sqrt(n)), exactly.
func isqrt(n uint64) uint64 {
	r := uint64(0)
	for bit := uint64(1) << 31; bit > 0; bit >>= 1 {
		if c := r | bit; c*c <= n {
			r = c
		}
	}
	return r
}
