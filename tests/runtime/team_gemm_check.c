/* team_gemm_check.c: the blocks of a GEMM that the threads of --workers compute
 * (nnrt_team_sgemm_block, runtime/workers.c) against the whole GEMM, which one worker
 * computes: the same bytes, because OpenBLAS sums each element over K alike wherever its
 * block starts. Shapes around OpenBLAS's small-matrix kernels (up to 100^3) and its K
 * blocking (K past a few hundred), every transpose, beta 0 and 1, 2 to 4 blocks, f32 and
 * f64. Prints how many GEMMs it compared and each difference, and exits 1 on any.
 * runtime_tests.py's team_gemm runs it. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

void openblas_set_num_threads(int n); /* OpenBLAS's; one thread, as in each worker */

static long compared, differ;
static unsigned seed = 12345;

static double next_value(void) {
    seed = seed * 1103515245u + 12345u;
    return (double)(seed >> 8) / (double)(1u << 24) - 0.5;
}

#define CHECK(T, gemm, block)                                                                      \
    static void check_##T(int ta, int tb, int M, int N, int K, T beta, int n) {                    \
        int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;                                           \
        T *A = malloc(sizeof(T) * (size_t)M * K), *B = malloc(sizeof(T) * (size_t)K * N);          \
        T *whole = malloc(sizeof(T) * (size_t)M * N), *parts = malloc(sizeof(T) * (size_t)M * N);  \
        for (long i = 0; i < (long)M * K; i++) A[i] = (T)next_value();                             \
        for (long i = 0; i < (long)K * N; i++) B[i] = (T)next_value();                             \
        for (long i = 0; i < (long)M * N; i++) whole[i] = parts[i] = (T)next_value();              \
        int a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;                \
        gemm(CblasRowMajor, a, b, M, N, K, (T)-0.1, A, lda, B, ldb, beta, whole, ldc);             \
        for (int p = 0; p < n; p++)                                                                \
            block(p, n, a, b, M, N, K, (T)-0.1, A, lda, B, ldb, beta, parts, ldc);                 \
        compared++;                                                                                \
        if (memcmp(whole, parts, sizeof(T) * (size_t)M * N) != 0 && differ++ < 20)                 \
            printf("differs: " #T " ta %d tb %d M %d N %d K %d beta %g, %d blocks\n", ta, tb, M,   \
                   N, K, (double)beta, n);                                                         \
        free(A);                                                                                   \
        free(B);                                                                                   \
        free(whole);                                                                               \
        free(parts);                                                                               \
    }
CHECK(float, cblas_sgemm, nnrt_team_sgemm_block)
CHECK(double, cblas_dgemm, nnrt_team_dgemm_block)

int main(void) {
    static const int ms[] = {16, 35, 64, 128, 200}, ns[] = {5, 10, 16, 40, 128},
                     ks[] = {10, 128, 300, 784, 2000};
    openblas_set_num_threads(1);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 5; k++)
                for (int t = 0; t < 4; t++)
                    for (int n = 2; n <= 4; n++) {
                        double beta = (i + j + k + n) % 2;
                        check_float(t & 1, t >> 1, ms[i], ns[j], ks[k], (float)beta, n);
                        check_double(t & 1, t >> 1, ms[i], ns[j], ks[k], beta, n);
                    }
    printf("compared %ld GEMMs, %ld differ\n", compared, differ);
    return differ != 0;
}
