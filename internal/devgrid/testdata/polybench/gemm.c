/* gemm: C = alpha*A*B + beta*C (PolyBench/C gemm). */
#include <stdio.h>
#include <stdlib.h>
#define N 1600
static double A[N][N], B[N][N], C[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			A[i][j] = (double)((i * j + 1) % n) / n;
			B[i][j] = (double)((i * (j + 1) + 2) % n) / n;
			C[i][j] = (double)((i * (j + 2) + 3) % n) / n;
		}
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < n; j++) C[i][j] *= 1.2;
		for (int k = 0; k < n; k++) {
			double a = 1.5 * A[i][k];
			for (int j = 0; j < n; j++) C[i][j] += a * B[k][j];
		}
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) sum += C[i][j] * ((i + j) % 7 + 1);
	printf("gemm n=%d %.6f\n", n, sum);
	return 0;
}
