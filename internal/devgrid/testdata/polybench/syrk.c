/* syrk: C = alpha*A*A^T + beta*C, lower triangle (PolyBench/C syrk). */
#include <stdio.h>
#include <stdlib.h>
#define N 1400
#define M 1200
static double A[N][M], C[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N, m = n * M / N;
	if (n > N || n < 1) n = N, m = M;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < m; j++) A[i][j] = (double)((i * j + 1) % n) / n;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) C[i][j] = (double)((i * j + 2) % m) / m;
	for (int i = 0; i < n; i++) {
		for (int j = 0; j <= i; j++) C[i][j] *= 1.2;
		for (int k = 0; k < m; k++)
			for (int j = 0; j <= i; j++) C[i][j] += 1.5 * A[i][k] * A[j][k];
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j <= i; j++) sum += C[i][j] * ((i + j) % 3 + 1);
	printf("syrk n=%d %.6f\n", n, sum);
	return 0;
}
