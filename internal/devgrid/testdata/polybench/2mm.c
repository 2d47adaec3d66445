/* 2mm: D = alpha*A*B*C + beta*D (PolyBench/C 2mm). */
#include <stdio.h>
#include <stdlib.h>
#define N 1300
static double A[N][N], B[N][N], C[N][N], D[N][N], T[N][N];
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : N;
	if (n > N || n < 1) n = N;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			A[i][j] = (double)((i * j + 1) % n) / n;
			B[i][j] = (double)(i * (j + 1) % n) / n;
			C[i][j] = (double)((i * (j + 3) + 1) % n) / n;
			D[i][j] = (double)(i * (j + 2) % n) / n;
		}
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) T[i][j] = 0;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < n; k++) {
			double a = 1.5 * A[i][k];
			for (int j = 0; j < n; j++) T[i][j] += a * B[k][j];
		}
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < n; j++) D[i][j] *= 1.2;
		for (int k = 0; k < n; k++)
			for (int j = 0; j < n; j++) D[i][j] += T[i][k] * C[k][j];
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) sum += D[i][j] * ((i + 2 * j) % 5 + 1);
	printf("2mm n=%d %.6f\n", n, sum);
	return 0;
}
