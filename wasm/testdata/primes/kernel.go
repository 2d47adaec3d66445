package main

// countPrimes returns how many primes are below n, by the sieve of
// Eratosthenes. wasm/primes_native_test.go holds a copy for the native side
// of the benchmark; a test keeps the two identical.
func countPrimes(n int) int {
	if n < 3 {
		return 0
	}
	composite := make([]bool, n)
	count := 0
	for i := 2; i < n; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j < n; j += i {
			composite[j] = true
		}
	}
	return count
}
