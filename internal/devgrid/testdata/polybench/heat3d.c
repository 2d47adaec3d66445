/* heat-3d: 7-point 3-D stencil, two arrays (PolyBench/C heat-3d). */
#include <stdio.h>
#include <stdlib.h>
#define N 150
#define T 100
static double A[N][N][N], B[N][N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N, t = T;
	if (n > N || n < 3) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			for (int k = 0; k < n; k++) A[i][j][k] = B[i][j][k] = (double)(i + j + (n - k)) * 10 / n;
	for (int s = 1; s <= t; s++) {
		for (int i = 1; i < n - 1; i++)
			for (int j = 1; j < n - 1; j++)
				for (int k = 1; k < n - 1; k++)
					B[i][j][k] = 0.125 * (A[i + 1][j][k] - 2.0 * A[i][j][k] + A[i - 1][j][k]) +
					             0.125 * (A[i][j + 1][k] - 2.0 * A[i][j][k] + A[i][j - 1][k]) +
					             0.125 * (A[i][j][k + 1] - 2.0 * A[i][j][k] + A[i][j][k - 1]) + A[i][j][k];
		for (int i = 1; i < n - 1; i++)
			for (int j = 1; j < n - 1; j++)
				for (int k = 1; k < n - 1; k++)
					A[i][j][k] = 0.125 * (B[i + 1][j][k] - 2.0 * B[i][j][k] + B[i - 1][j][k]) +
					             0.125 * (B[i][j + 1][k] - 2.0 * B[i][j][k] + B[i][j - 1][k]) +
					             0.125 * (B[i][j][k + 1] - 2.0 * B[i][j][k] + B[i][j][k - 1]) + B[i][j][k];
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			for (int k = 0; k < n; k++) sum += A[i][j][k];
	printf("heat-3d n=%d %.6f\n", n, sum);
	return 0;
}
