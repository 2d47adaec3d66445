/* lcs: longest common subsequence of two pseudo-random strings by dynamic
 * programming, keeping two rows (dynamic programming, integer). Prints the
 * length and a checksum of the last row. */
#include <stdio.h>
#include <stdlib.h>

#define N 9000

static unsigned char a[N], b[N];
static int prev[N + 1], cur[N + 1];

static unsigned int rng = 12345;
static unsigned int next(void) {
	rng = rng * 1103515245u + 12345u;
	return rng >> 16;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	for (int i = 0; i < n; i++) a[i] = 'a' + next() % 4;
	for (int i = 0; i < n; i++) b[i] = 'a' + next() % 4;
	for (int j = 0; j <= n; j++) prev[j] = 0;
	for (int i = 1; i <= n; i++) {
		cur[0] = 0;
		for (int j = 1; j <= n; j++) {
			if (a[i - 1] == b[j - 1]) cur[j] = prev[j - 1] + 1;
			else cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
		}
		for (int j = 0; j <= n; j++) prev[j] = cur[j];
	}
	unsigned long long sum = 0;
	for (int j = 0; j <= n; j++) sum = sum * 31 + (unsigned)prev[j];
	printf("lcs n=%d length=%d checksum=%llu\n", n, prev[n], sum);
	return 0;
}
