/* lcs: longest common subsequence by dynamic programming, two rows
 * (integer code with a data-dependent branch, as PolyBench's nussinov). */
#include <stdio.h>
#include <stdlib.h>
#define N 30000
static unsigned char a[N], b[N];
static int prev[N + 1], cur[N + 1];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	unsigned x = 12345;
	for (int i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		a[i] = 'a' + (x >> 16) % 4;
		x = x * 1103515245u + 12345u;
		b[i] = 'a' + (x >> 16) % 4;
	}
	for (int i = 1; i <= n; i++) {
		for (int j = 1; j <= n; j++) {
			if (a[i - 1] == b[j - 1]) cur[j] = prev[j - 1] + 1;
			else cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
		}
		for (int j = 0; j <= n; j++) prev[j] = cur[j];
	}
	printf("lcs n=%d %d\n", n, prev[n]);
	return 0;
}
