// Command primes prints how many primes are below N (its first argument).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: primes N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "primes: N must be a non-negative integer")
		os.Exit(2)
	}
	fmt.Println(countPrimes(n))
}
