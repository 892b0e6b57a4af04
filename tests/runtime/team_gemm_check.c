/* team_gemm_check.c: the blocks of a GEMM that the threads of --workers compute
 * (nnrt_team_sgemm_block, runtime/workers.c) against the whole GEMM, which one worker
 * computes. Every element must be the whole product's up to the rounding of its sum over K
 * (docs/runtime.md, "Data-parallel workers"): within 2 K ulps of the sum of the terms'
 * magnitudes, which a block at a wrong place, a wrong transpose or a wrong beta misses by
 * far. Where OpenBLAS sums a block as the whole the bytes are the same; which shapes those
 * are depends on the kernels the CPU gets, so the count of such GEMMs is printed, not
 * checked. Shapes around OpenBLAS's small-matrix kernels (up to 100^3) and its K blocking
 * (K past a few hundred), every transpose, beta 0 and 1, 2 to 4 blocks, f32 and f64.
 * Prints how many GEMMs it compared, how many were the same bytes and each one out of
 * bounds, and exits 1 on any. runtime_tests.py's team_gemm runs it. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

void openblas_set_num_threads(int n); /* OpenBLAS's; one thread, as in each worker */

static long compared, same, differ;
static unsigned seed = 12345;

static double next_value(void) {
    seed = seed * 1103515245u + 12345u;
    return (double)(seed >> 8) / (double)(1u << 24) - 0.5;
}

/* Whether every element of parts is whole's up to the rounding of C = -0.1 op(A) op(B) +
 * beta C0: 2 K ulps (of T) of the sum of the magnitudes of its terms. */
#define WITHIN_ROUNDING(T, EPS)                                                                    \
    static int within_rounding_##T(int ta, int tb, int M, int N, int K, const T *A, const T *B,    \
                                   T beta, const T *before, const T *whole, const T *parts) {      \
        for (int i = 0; i < M; i++)                                                                \
            for (int j = 0; j < N; j++) {                                                          \
                double size = fabs((double)beta * before[(long)i * N + j]);                        \
                for (int k = 0; k < K; k++) {                                                      \
                    double a = ta ? A[(long)k * M + i] : A[(long)i * K + k];                       \
                    double b = tb ? B[(long)j * K + k] : B[(long)k * N + j];                       \
                    size += 0.1 * fabs(a * b);                                                     \
                }                                                                                  \
                double gap = fabs((double)whole[(long)i * N + j] - parts[(long)i * N + j]);        \
                if (!(gap <= 2.0 * (K + 2) * EPS * size)) return 0;                                \
            }                                                                                      \
        return 1;                                                                                  \
    }
WITHIN_ROUNDING(float, FLT_EPSILON)
WITHIN_ROUNDING(double, DBL_EPSILON)

#define CHECK(T, gemm, block)                                                                      \
    static void check_##T(int ta, int tb, int M, int N, int K, T beta, int n) {                    \
        int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;                                           \
        T *A = malloc(sizeof(T) * (size_t)M * K), *B = malloc(sizeof(T) * (size_t)K * N);          \
        T *whole = malloc(sizeof(T) * (size_t)M * N), *parts = malloc(sizeof(T) * (size_t)M * N);  \
        for (long i = 0; i < (long)M * K; i++) A[i] = (T)next_value();                             \
        for (long i = 0; i < (long)K * N; i++) B[i] = (T)next_value();                             \
        T *before = malloc(sizeof(T) * (size_t)M * N);                                             \
        for (long i = 0; i < (long)M * N; i++) before[i] = whole[i] = parts[i] = (T)next_value();  \
        int a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;                \
        gemm(CblasRowMajor, a, b, M, N, K, (T)-0.1, A, lda, B, ldb, beta, whole, ldc);             \
        for (int p = 0; p < n; p++)                                                                \
            block(p, n, a, b, M, N, K, (T)-0.1, A, lda, B, ldb, beta, parts, ldc);                 \
        compared++;                                                                                \
        if (memcmp(whole, parts, sizeof(T) * (size_t)M * N) == 0)                                  \
            same++;                                                                                \
        else if (!within_rounding_##T(ta, tb, M, N, K, A, B, beta, before, whole, parts) &&        \
                 differ++ < 20)                                                                    \
            printf("differs: " #T " ta %d tb %d M %d N %d K %d beta %g, %d blocks\n", ta, tb, M,   \
                   N, K, (double)beta, n);                                                         \
        free(A);                                                                                   \
        free(B);                                                                                   \
        free(whole);                                                                               \
        free(parts);                                                                               \
        free(before);                                                                              \
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
    printf("compared %ld GEMMs, %ld the same bytes, %ld differ\n", compared, same, differ);
    return differ != 0;
}
