/* packed_gemm_check.c: runtime/packed_gemm.c against a reference. Every combination of
 * sizes at the edges of the kernel's tiles (M around its 8 rows, N around its 32 columns, K
 * from 1), op(B) = B and Bᵀ, beta 0 and 1, alpha 1 and -0.5, and strides wider than the
 * matrices, on every path the CPU has: the AVX-512 and AVX2 kernels must give exactly the sum
 * docs/codegen.md describes (k in order, one fused multiply-add each), the OpenBLAS fallback
 * the product to rounding. Around each C it checks that nothing outside the M × N it was
 * given is written, that beta = 0 never reads C (it holds NaNs), and that a NaN in A makes
 * its row NaN and nothing else. Prints the path, how many products it compared and each
 * difference; exits 1 on any. runtime_tests.py's packed_gemm runs it. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packed_gemm.h"

#define GUARD 7 /* columns of C past N (ldc = N + GUARD), and rows below M, never written */

static long compared, differ;

static uint64_t rng_state = 88172645463325252ull;
static float next_value(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) % 2001) / 1000.0f - 1.0f;
}

static void fail(const char *what, int64_t M, int64_t N, int64_t K, int tb, float beta, int64_t i,
                 int64_t j, float got, float want) {
    if (differ++ < 20)
        printf("differs: %s M %lld N %lld K %lld tb %d beta %g at [%lld, %lld]: %a, want %a\n",
               what, (long long)M, (long long)N, (long long)K, tb, beta, (long long)i, (long long)j,
               got, want);
}

/* op(B)[k][j] of B stored [K, N] (or [N, K] when tb) with row stride ldb. */
static float op_b(const float *B, int64_t ldb, int tb, int64_t k, int64_t j) {
    return tb ? B[j * ldb + k] : B[k * ldb + j];
}

/* The kernel's sum, exactly: in order of k, one fused multiply-add each. */
static float kernel_sum(const float *A, int64_t lda, const float *B, int64_t ldb, int tb, int64_t K,
                        int64_t i, int64_t j, float alpha, float beta, float c) {
    float acc = 0;
    for (int64_t k = 0; k < K; k++) acc = fmaf(A[i * lda + k], op_b(B, ldb, tb, k, j), acc);
    float out = alpha * acc;
    return beta != 0 ? fmaf(beta, c, out) : out;
}

static double exact_sum(const float *A, int64_t lda, const float *B, int64_t ldb, int tb, int64_t K,
                        int64_t i, int64_t j, float alpha, float beta, float c, double *magnitude) {
    double acc = 0, mag = 0;
    for (int64_t k = 0; k < K; k++) {
        double t = (double)A[i * lda + k] * op_b(B, ldb, tb, k, j);
        acc += t;
        mag += fabs(t);
    }
    *magnitude = fabs(alpha) * mag + (beta != 0 ? fabs(beta * c) : 0);
    return alpha * acc + (beta != 0 ? (double)beta * c : 0);
}

/* One product; nan_row >= 0 puts a NaN into that row of A. */
static void one(int64_t M, int64_t N, int64_t K, int tb, float alpha, float beta, int64_t nan_row,
                bool kernel) {
    int64_t lda = K + 3, ldb = (tb ? K : N) + 5, ldc = N + GUARD;
    int64_t b_rows = tb ? N : K;
    float *A = malloc(sizeof(float) * (size_t)(M * lda));
    float *B = malloc(sizeof(float) * (size_t)(b_rows * ldb));
    float *packed = malloc(sizeof(float) * (size_t)nnrt_packed_elems(K, N));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    for (int64_t i = 0; i < M * lda; i++) A[i] = next_value();
    for (int64_t i = 0; i < b_rows * ldb; i++) B[i] = next_value();
    if (nan_row >= 0) A[nan_row * lda + K / 2] = NAN;
    for (int64_t i = 0; i < (M + 1) * ldc; i++) {
        bool inside = i / ldc < M && i % ldc < N;
        C0[i] = C[i] = beta == 0 && inside ? NAN : next_value();
    }
    nnrt_sgemm_pack(K, N, B, ldb, tb, packed);
    nnrt_sgemm_packed(M, N, K, alpha, A, lda, B, ldb, tb, packed, beta, C, ldc);
    compared++;
    for (int64_t i = 0; i <= M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], c = C0[i * ldc + j];
            if (i == M || j >= N) {
                if (memcmp(&got, &c, sizeof got) != 0)
                    fail("written outside", M, N, K, tb, beta, i, j, got, c);
                continue;
            }
            if (i == nan_row) {
                if (!isnan(got)) fail("NaN row", M, N, K, tb, beta, i, j, got, NAN);
                continue;
            }
            if (kernel) {
                float want = kernel_sum(A, lda, B, ldb, tb, K, i, j, alpha, beta, c);
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail("kernel", M, N, K, tb, beta, i, j, got, want);
            } else {
                double magnitude,
                    want = exact_sum(A, lda, B, ldb, tb, K, i, j, alpha, beta, c, &magnitude);
                if (!(fabs(got - want) <= 1e-5 * magnitude + 1e-30))
                    fail("blas", M, N, K, tb, beta, i, j, got, (float)want);
            }
        }
    free(A);
    free(B);
    free(packed);
    free(C);
    free(C0);
}

static void all_sizes(bool kernel) {
    static const int64_t Ms[] = {1, 2, 7, 8, 9, 16, 17, 32, 33};
    static const int64_t Ns[] = {1, 5, 16, 17, 31, 32, 33, 64, 65, 100};
    static const int64_t Ks[] = {1, 2, 15, 64, 65, 130};
    static const float alphas[] = {1, -0.5f}, betas[] = {0, 1};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
                for (int tb = 0; tb < 2; tb++)
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) {
                            int64_t M = Ms[m], N = Ns[n], K = Ks[k];
                            one(M, N, K, tb, alphas[a], betas[b], -1, kernel);
                            if (a == 0 && b == 0) one(M, N, K, tb, 1, 0, M / 2, kernel);
                        }
    /* a batch beyond the kernel's block of A (several blocks of rows) */
    one(300, 40, 600, 0, 1, 1, 299, kernel);
    one(300, 40, 600, 1, 1, 0, -1, kernel);
}

/* Each path the CPU has, from the best down: the kernels exactly, OpenBLAS to rounding. */
int main(void) {
    static const char *const names[] = {"blas", "avx2", "avx512"};
    for (int most = NNRT_PACKED_AVX512; most >= NNRT_PACKED_BLAS; most--) {
        nnrt_packed_gemm_limit((nnrt_packed_path)most);
        nnrt_packed_path path = nnrt_packed_gemm_path();
        if ((int)path != most) continue; /* the CPU has not got it: a lower limit tests the next */
        printf("path %s\n", names[path]);
        all_sizes(path != NNRT_PACKED_BLAS);
    }
    printf("compared %ld products, %ld differ\n", compared, differ);
    return differ ? 1 : 0;
}
