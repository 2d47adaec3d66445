// Command spin is a CPU-bound Go-built task of a chosen length: it runs
// args[1] rounds of an integer mix (xorshift and multiply, no memory
// traffic) seeded by args[2], and prints the result. Tests and benchmarks
// use it where a task must be a real Go module (2.x MB, the Go runtime's
// start included) whose run time they set.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	rounds, _ := strconv.Atoi(arg(1))
	seed, _ := strconv.ParseUint(arg(2), 10, 64)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x *= 0xbf58476d1ce4e5b9
	}
	fmt.Println(x)
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return "0"
}
