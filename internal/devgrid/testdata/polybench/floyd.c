/* floyd-warshall: all-pairs shortest paths on integer weights
 * (PolyBench/C floyd-warshall). */
#include <stdio.h>
#include <stdlib.h>
#define N 1500
static int P[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			P[i][j] = i * j % 7 + 1;
			if ((i + j) % 13 == 0 || (i + j) % 7 == 0 || (i + j) % 11 == 0) P[i][j] = 999;
		}
	for (int k = 0; k < n; k++)
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n; j++)
				if (P[i][k] + P[k][j] < P[i][j]) P[i][j] = P[i][k] + P[k][j];
	long long sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) sum += (long long)P[i][j] * ((i + j) % 5 + 1);
	printf("floyd-warshall n=%d %lld\n", n, sum);
	return 0;
}
