/* seidel-2d: 9-point Gauss-Seidel sweeps in place (PolyBench/C seidel-2d). */
#include <stdio.h>
#include <stdlib.h>
#define N 2000
#define T 30
static double A[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N, t = T;
	if (n > N || n < 3) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) A[i][j] = ((double)i * (j + 2) + 2) / n;
	for (int s = 0; s < t; s++)
		for (int i = 1; i <= n - 2; i++)
			for (int j = 1; j <= n - 2; j++)
				A[i][j] = (A[i - 1][j - 1] + A[i - 1][j] + A[i - 1][j + 1] + A[i][j - 1] + A[i][j] +
				           A[i][j + 1] + A[i + 1][j - 1] + A[i + 1][j] + A[i + 1][j + 1]) / 9.0;
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) sum += A[i][j];
	printf("seidel-2d n=%d %.6f\n", n, sum);
	return 0;
}
