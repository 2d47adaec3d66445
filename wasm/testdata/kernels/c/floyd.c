/* floyd-warshall: all-pairs shortest paths on a pseudo-random directed
 * graph of N nodes with integer weights (integer graph code, after
 * PolyBench/C floyd-warshall). Prints a checksum of the distances. */
#include <stdio.h>
#include <stdlib.h>

#define N 600
#define INF 1000000000

static int d[N][N];

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			if (i == j) d[i][j] = 0;
			else if ((i * j) % 7 == 0 || (i + j) % 13 == 0 || (i * 3 + j) % 11 == 0)
				d[i][j] = (i * j) % 97 + (i + j) % 7 + 1;
			else d[i][j] = INF;
		}
	for (int k = 0; k < n; k++)
		for (int i = 0; i < n; i++) {
			int dik = d[i][k];
			if (dik == INF) continue;
			for (int j = 0; j < n; j++) {
				int via = dik + d[k][j];
				if (via < d[i][j]) d[i][j] = via;
			}
		}
	unsigned long long sum = 0;
	long reachable = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			if (d[i][j] < INF) { sum = sum * 1000003 + (unsigned)d[i][j]; reachable++; }
	printf("floyd-warshall n=%d reachable=%ld checksum=%llu\n", n, reachable, sum);
	return 0;
}
