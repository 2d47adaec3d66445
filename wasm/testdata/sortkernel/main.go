// Command sortkernel is an allocation-heavy compute kernel: for each of
// ROUNDS rounds it fills a fresh slice of SIZE pseudo-random integers,
// sorts it and folds it into a checksum, which it prints.
package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
)

func main() {
	rounds, size := arg(1, 8), arg(2, 1<<20)
	x := uint64(88172645463325252)
	var sum uint64
	for r := 0; r < rounds; r++ {
		s := make([]uint64, size)
		for i := range s {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			s[i] = x
		}
		slices.Sort(s)
		for i := 0; i < len(s); i += 4096 {
			sum = sum*31 + s[i]
		}
	}
	fmt.Println(sum)
}

func arg(i, def int) int {
	if len(os.Args) <= i {
		return def
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: sortkernel [ROUNDS [SIZE]]")
		os.Exit(2)
	}
	return n
}
