/* jacobi-2d: 5-point stencil, two arrays (PolyBench/C jacobi-2d). */
#include <stdio.h>
#include <stdlib.h>
#define N 2000
#define T 250
static double A[N][N], B[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N, t = T;
	if (n > N || n < 3) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			A[i][j] = ((double)i * (j + 2) + 2) / n;
			B[i][j] = ((double)i * (j + 3) + 3) / n;
		}
	for (int s = 0; s < t; s++) {
		for (int i = 1; i < n - 1; i++)
			for (int j = 1; j < n - 1; j++)
				B[i][j] = 0.2 * (A[i][j] + A[i][j - 1] + A[i][j + 1] + A[i + 1][j] + A[i - 1][j]);
		for (int i = 1; i < n - 1; i++)
			for (int j = 1; j < n - 1; j++)
				A[i][j] = 0.2 * (B[i][j] + B[i][j - 1] + B[i][j + 1] + B[i + 1][j] + B[i - 1][j]);
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) sum += A[i][j];
	printf("jacobi-2d n=%d %.6f\n", n, sum);
	return 0;
}
