/* packed_gemm_check.c: runtime/packed_gemm.c and in_place_gemm.c against a reference: the
 * packed products, and nnrt_sgemm_nn and nnrt_sgemm_tn, which read B in place with the AVX-512
 * kernel and skip A's zero columns (and their choice of shapes). Every
 * combination of sizes at the edges of the kernel's tiles (M around its 8 rows, N around its 32
 * columns, K from 1), op(B) = B and Bᵀ, beta 0 and 1, alpha 1 and -0.5, and strides wider than the
 * matrices, on every path the CPU has: the AVX-512 and AVX2 kernels must give exactly the sum
 * docs/codegen.md describes (k in order, one fused multiply-add each), the OpenBLAS fallback the
 * product to rounding. Around each C it checks that nothing outside the M × N it was given is
 * written, that beta = 0 never reads C (it holds NaNs), and that a NaN in A makes its row NaN and
 * nothing else. Prints the path, how many products it compared and each difference; exits 1 on any.
 * runtime_tests.py's packed_gemm runs it. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "in_place_gemm.h"
#include "packed_gemm.h"
#include "workers.h"

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

static void compare(int64_t M, int64_t N, int64_t K, int tb, float alpha, float beta,
                    int64_t nan_row, bool kernel, const float *A, int64_t lda, const float *B,
                    int64_t ldb, const float *C, const float *C0, int64_t ldc);

/* One product, through the packed form and, when op(B) = B, through nnrt_sgemm_nn; nan_row
 * >= 0 puts a NaN into that row of A. */
static void one(int64_t M, int64_t N, int64_t K, int tb, float alpha, float beta, int64_t nan_row,
                bool kernel, bool zeros) {
    int64_t lda = K + 3, ldb = (tb ? K : N) + 5, ldc = N + GUARD;
    int64_t b_rows = tb ? N : K;
    float *A = malloc(sizeof(float) * (size_t)(M * lda));
    float *B = malloc(sizeof(float) * (size_t)(b_rows * ldb));
    float *packed = malloc(sizeof(float) * (size_t)nnrt_packed_elems(K, N));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    for (int64_t i = 0; i < M * lda; i++) A[i] = next_value();
    for (int64_t i = 0; i < b_rows * ldb; i++) B[i] = next_value();
    if (zeros) /* columns the in-place product skips: 0, -0, and a run at the start */
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++)
                if (k % 3 == 1 || k < K / 4) A[i * lda + k] = k % 2 ? -0.0f : 0.0f;
    if (nan_row >= 0) A[nan_row * lda + K / 2] = NAN;
    for (int64_t i = 0; i < (M + 1) * ldc; i++) {
        bool inside = i / ldc < M && i % ldc < N;
        C0[i] = C[i] = beta == 0 && inside ? NAN : next_value();
    }
    nnrt_sgemm_pack(K, N, B, ldb, tb, packed);
    nnrt_sgemm_packed(M, N, K, alpha, A, lda, B, ldb, tb, packed, beta, C, ldc);
    compare(M, N, K, tb, alpha, beta, nan_row, kernel, A, lda, B, ldb, C, C0, ldc);
    if (!tb) { /* B read in place, from a copy that ends where its last row does */
        float *tight = malloc(sizeof(float) * (size_t)(K * N));
        for (int64_t k = 0; k < K; k++)
            memcpy(tight + k * N, B + k * ldb, sizeof(float) * (size_t)N);
        memcpy(C, C0, sizeof(float) * (size_t)((M + 1) * ldc));
        nnrt_sgemm_nn_as(kernel, M, N, K, alpha, A, lda, tight, N, beta, C, ldc);
        compare(M, N, K, tb, alpha, beta, nan_row,
                kernel && nnrt_packed_gemm_path() == NNRT_PACKED_AVX512, A, lda, tight, N, C, C0,
                ldc);
        free(tight);
    }
    free(A);
    free(B);
    free(packed);
    free(C);
    free(C0);
}

/* C (ldc wide, one guard row) after a product against C0, its values before. */
static void compare(int64_t M, int64_t N, int64_t K, int tb, float alpha, float beta,
                    int64_t nan_row, bool kernel, const float *A, int64_t lda, const float *B,
                    int64_t ldb, const float *C, const float *C0, int64_t ldc) {
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
                            one(M, N, K, tb, alphas[a], betas[b], -1, kernel, false);
                            one(M, N, K, tb, alphas[a], betas[b], -1, kernel, true);
                            if (a == 0 && b == 0) one(M, N, K, tb, 1, 0, M / 2, kernel, true);
                        }
    /* a batch beyond the kernel's block of A (several blocks of rows) */
    one(300, 40, 600, 0, 1, 1, 299, kernel, true);
    one(300, 40, 600, 1, 1, 0, -1, kernel, false);
}

/* ---- nnrt_sgemm_tn: C = alpha·Aᵀ·B + beta·C, A [K, M] ---- */

/* Which columns of A are zero, by pattern: none; every third and the first quarter (rows of
 * C that are not consecutive, and a run); all but one. */
static bool zero_column(int pattern, int64_t i, int64_t M) {
    switch (pattern) {
    case 1: return i % 3 == 1 || i < M / 4;
    case 2: return i != M / 2;
    default: return false;
    }
}

/* Element (i, j) as the kernel computes it, or as a skipped row holds it. */
static float tn_want(const float *A, int64_t lda, const float *B, int64_t ldb, int64_t K, int64_t i,
                     int64_t j, float alpha, float beta, float c, bool skipped) {
    if (skipped) return beta == 1 ? c : beta == 0 ? alpha * 0.0f : fmaf(beta, c, alpha * 0.0f);
    float acc = 0;
    for (int64_t k = 0; k < K; k++) acc = fmaf(A[k * lda + i], B[k * ldb + j], acc);
    float out = alpha * acc;
    return beta != 0 ? fmaf(beta, c, out) : out;
}

/* One product through nnrt_sgemm_tn_as. bad_b puts an infinity into B: the skipped rows must
 * stay as they are (in_place_gemm.h), where the whole product would make them NaN. A NaN
 * in A (nan_col >= 0, in a zero column) makes that column's row NaN. */
static void one_tn(int64_t M, int64_t N, int64_t K, float alpha, float beta, int pattern,
                   int64_t nan_col, bool bad_b, bool kernel) {
    int64_t lda = M + 3, ldb = N + 5, ldc = N + GUARD;
    float *A = malloc(sizeof(float) * (size_t)(K * lda));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    for (int64_t k = 0; k < K; k++)
        for (int64_t i = 0; i < lda; i++)
            A[k * lda + i] =
                i < M && zero_column(pattern, i, M) ? (k % 2 ? -0.0f : 0.0f) : next_value();
    for (int64_t i = 0; i < K * ldb; i++) B[i] = next_value();
    if (nan_col >= 0) A[(K - 1) * lda + nan_col] = NAN;
    if (bad_b) B[(K / 2) * ldb + N / 2] = INFINITY;
    for (int64_t i = 0; i < (M + 1) * ldc; i++) {
        bool inside = i / ldc < M && i % ldc < N;
        C0[i] = C[i] = beta == 0 && inside ? NAN : next_value();
    }
    nnrt_sgemm_tn_as(kernel, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    bool exact = kernel && nnrt_packed_gemm_path() == NNRT_PACKED_AVX512;
    compared++;
    for (int64_t i = 0; i <= M; i++) {
        bool skipped = i < M && i != nan_col && zero_column(pattern, i, M);
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], c = C0[i * ldc + j];
            if (i == M || j >= N) {
                if (memcmp(&got, &c, sizeof got) != 0)
                    fail("tn: written outside", M, N, K, 0, beta, i, j, got, c);
            } else if (i == nan_col) {
                if (!isnan(got)) fail("tn: NaN row", M, N, K, 0, beta, i, j, got, NAN);
            } else if (bad_b) {
                float want = tn_want(A, lda, B, ldb, K, i, j, alpha, beta, c, true);
                if (exact && skipped && memcmp(&got, &want, sizeof got) != 0)
                    fail("tn: skipped row with inf in B", M, N, K, 0, beta, i, j, got, want);
            } else if (exact) {
                float want = tn_want(A, lda, B, ldb, K, i, j, alpha, beta, c, skipped);
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail("tn: kernel", M, N, K, 0, beta, i, j, got, want);
            } else {
                double acc = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    double t = (double)A[k * lda + i] * B[k * ldb + j];
                    acc += t;
                    mag += fabs(t);
                }
                double want = alpha * acc + (beta != 0 ? (double)beta * c : 0);
                mag = fabs(alpha) * mag + (beta != 0 ? fabs(beta * c) : 0);
                if (!(fabs(got - want) <= 1e-5 * mag + 1e-30))
                    fail("tn: blas", M, N, K, 0, beta, i, j, got, (float)want);
            }
        }
    }
    free(A);
    free(B);
    free(C);
    free(C0);
}

static void tn_sizes(bool kernel) {
    static const int64_t Ms[] = {1, 7, 8, 9, 17, 33, 100};
    static const int64_t Ns[] = {1, 16, 31, 33, 64, 65, 100};
    static const int64_t Ks[] = {1, 2, 32, 65};
    static const float alphas[] = {1, -0.5f}, betas[] = {0, 1, 0.5f};
    for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
                for (int pattern = 0; pattern < 3; pattern++)
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 3; b++)
                            one_tn(Ms[m], Ns[n], Ks[k], alphas[a], betas[b], pattern, -1, false,
                                   kernel);
    one_tn(50, 64, 32, 1, 1, 1, 1, false, kernel); /* column 1 is zero but for its NaN */
    one_tn(50, 64, 32, -0.5f, 1, 1, -1, true, kernel);
    one_tn(50, 64, 32, 1, 0.5f, 2, -1, true, kernel);
    one_tn(784, 128, 32, -0.01f, 1, 1, -1, false, kernel); /* W1's weight gradient */
}

/* ---- a column's one value late in A ----
 * The list of A's nonzero columns reads groups of 8 rows and stops once every column has a
 * value: a column whose only value lies in row r must still be listed, for r at each edge of
 * a group and at the last row, in A that is dense but for it (every other block of 16
 * columns full after the first group) and beside a column that is zero throughout. */

/* Dense values, column `late` zero but for row r, column `empty` zero in every row (when
 * they are inside A's cols); rows × cols with row stride ld. */
static void fill_late(float *A, int64_t rows, int64_t cols, int64_t ld, int64_t late, int64_t r,
                      int64_t empty) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++) {
            float v = next_value();
            if (v == 0) v = 0.5f;
            if (j < cols && ((j == late && i != r) || j == empty)) v = i % 2 ? -0.0f : 0.0f;
            A[i * ld + j] = v;
        }
}

/* X·W with A [M, K]: column `late` of A has its one value in row r. */
static void nn_late(int64_t M, int64_t K, int64_t late, int64_t r, bool kernel) {
    int64_t N = 64, lda = K + 3, ldb = N + 5, ldc = N + GUARD;
    float *A = malloc(sizeof(float) * (size_t)(M * lda));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    fill_late(A, M, K, lda, late, r, K - 1);
    for (int64_t i = 0; i < K * ldb; i++) B[i] = next_value();
    for (int64_t i = 0; i < (M + 1) * ldc; i++) C0[i] = C[i] = next_value();
    nnrt_sgemm_nn_as(kernel, M, N, K, -0.5f, A, lda, B, ldb, 1, C, ldc);
    compare(M, N, K, 0, -0.5f, 1, -1, kernel && nnrt_packed_gemm_path() == NNRT_PACKED_AVX512, A,
            lda, B, ldb, C, C0, ldc);
    free(A);
    free(B);
    free(C);
    free(C0);
}

/* The fused update's Xᵀ·dZ with A [K, M]: row `late` of C is computed from A's one value in
 * row r of its column; row M - 1 (a zero column) is left as it is. */
static void tn_late(int64_t M, int64_t K, int64_t late, int64_t r, bool kernel) {
    int64_t N = 64, lda = M + 3, ldb = N + 5, ldc = N + GUARD;
    float *A = malloc(sizeof(float) * (size_t)(K * lda));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    fill_late(A, K, M, lda, late, r, M - 1);
    for (int64_t i = 0; i < K * ldb; i++) B[i] = next_value();
    for (int64_t i = 0; i < (M + 1) * ldc; i++) C0[i] = C[i] = next_value();
    nnrt_sgemm_tn_as(kernel, 0, M, N, K, -0.5f, A, lda, B, ldb, 1, C, ldc);
    bool exact = kernel && nnrt_packed_gemm_path() == NNRT_PACKED_AVX512;
    compared++;
    for (int64_t i = 0; i <= M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], c = C0[i * ldc + j];
            bool outside = i == M || j >= N;
            float want = outside ? c : tn_want(A, lda, B, ldb, K, i, j, -0.5f, 1, c, i == M - 1);
            if (outside || exact) {
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail("tn: late value", M, N, K, 0, 1, i, j, got, want);
            } else if (!(fabsf(got - want) <= 1e-4f * (1 + fabsf(want)))) {
                fail("tn: late value (blas)", M, N, K, 0, 1, i, j, got, want);
            }
        }
    free(A);
    free(B);
    free(C);
    free(C0);
}

static void late_values(bool kernel) {
    static const int64_t rows[] = {1, 7, 8, 9, 16, 17, 65};
    static const int64_t cols[] = {2, 16, 17, 100};
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t b = 0; b < sizeof cols / sizeof *cols; b++) {
            int64_t n = rows[a], m = cols[b];
            const int64_t at[] = {0, 7, 8, 9, n - 1};
            for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
                bool again = false; /* n - 1 may be one of the edges */
                for (size_t e = 0; e < k; e++) again |= at[e] == at[k];
                if (at[k] >= n || again) continue;
                nn_late(n, m, m / 2, at[k], kernel);
                tn_late(m, n, m / 2, at[k], kernel);
            }
        }
}

/* ---- nnrt_sgemm_tn_again: the list of the thread's last nnrt_sgemm_nn ----
 * A [K, M] is both X of an X·W (nnrt_sgemm_nn on [K rows, M columns]) and the A of Xᵀ·dZ. The
 * list is taken only while it is A's: after an X·W on A itself; not after one on another
 * matrix, nor after A changed and an X·W on it went to OpenBLAS (it must then forget its
 * list: A's column 5, zero when the list was made, holds values by then). */
static void tn_again_case(int64_t M, int64_t K, int before, bool kernel) {
    int64_t N = 64, lda = M + 3, ldb = N + 5, ldc = N + GUARD, width = 40;
    float *A = malloc(sizeof(float) * (size_t)(K * lda));
    float *other = malloc(sizeof(float) * (size_t)(K * lda));
    float *W = malloc(sizeof(float) * (size_t)(M * width));
    float *H = malloc(sizeof(float) * (size_t)(K * width));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb));
    float *C = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)((M + 1) * ldc));
    fill_late(A, K, M, lda, 5, K, M - 1); /* column 5 zero throughout, and column M - 1 */
    fill_late(other, K, M, lda, 7, K, 2);
    for (int64_t i = 0; i < M * width; i++) W[i] = next_value();
    for (int64_t i = 0; i < K * ldb; i++) B[i] = next_value();
    for (int64_t i = 0; i < (M + 1) * ldc; i++) C0[i] = C[i] = next_value();
    bool in_place = kernel && nnrt_packed_gemm_path() == NNRT_PACKED_AVX512;
    switch (before) {
    case 0: /* X·W on A: its list is A's */
        nnrt_sgemm_nn_as(kernel, K, width, M, 1, A, lda, W, width, 0, H, width);
        break;
    case 1: /* X·W on another matrix: a list, not A's */
        nnrt_sgemm_nn_as(kernel, K, width, M, 1, other, lda, W, width, 0, H, width);
        break;
    case 2: /* A's list made, then A changed, then X·W on A through OpenBLAS */
        nnrt_sgemm_nn_as(kernel, K, width, M, 1, A, lda, W, width, 0, H, width);
        for (int64_t k = 0; k < K; k++) A[k * lda + 5] = 0.25f;
        nnrt_sgemm_nn_as(0, K, width, M, 1, A, lda, W, width, 0, H, width);
        break;
    default: break; /* no X·W at all */
    }
    nnrt_sgemm_tn_again(M, N, K, -0.5f, A, lda, B, ldb, 1, C, ldc);
    compared++;
    for (int64_t i = 0; i <= M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], c = C0[i * ldc + j];
            bool outside = i == M || j >= N, zero = i == M - 1 || (i == 5 && before != 2);
            float want = outside ? c : tn_want(A, lda, B, ldb, K, i, j, -0.5f, 1, c, zero);
            bool exact = outside || (in_place && nnrt_sgemm_tn_in_place(M, K, N));
            if (exact ? memcmp(&got, &want, sizeof got) != 0
                      : !(fabsf(got - want) <= 1e-4f * (1 + fabsf(want))))
                fail("tn again", M, N, K, before, 1, i, j, got, want);
        }
    free(A);
    free(other);
    free(W);
    free(H);
    free(B);
    free(C);
    free(C0);
}

static void tn_again(bool kernel) {
    for (int before = 0; before < 4; before++) {
        tn_again_case(100, 32, before, kernel);
        tn_again_case(784, 32, before, kernel);
    }
}

/* ---- nnrt_sgemm_nn_bias_relu ----
 * Against nnrt_sgemm_nn (alpha 1, beta 0) and then the compiled loop's arithmetic, bit for
 * bit: t = c + bias[j], one rounding, and relu(t) = t unless t <= 0, else +0 (a NaN passes).
 * T alone, H alone, both; nothing written outside them. Column j of the bias by j % 8: drawn,
 * 0 over a zero column of B (t exactly 0), NaN, +inf, -inf, -0, the negated first row's
 * product (t near 0 either side), drawn. A has zero columns (the kernel's list), and after
 * the call nnrt_sgemm_tn_again on A must equal nnrt_sgemm_tn: the list it keeps is A's. */
static void bias_relu_case(int64_t M, int64_t K, int64_t N, int outputs, bool kernel) {
    int64_t lda = K + 3, ldb = N + 5, ldc = N + GUARD, rows = M + 1;
    float *A = malloc(sizeof(float) * (size_t)(M * lda));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb));
    float *bias = malloc(sizeof(float) * (size_t)N);
    float *C = malloc(sizeof(float) * (size_t)(rows * ldc));
    float *out[2], *out0 = malloc(sizeof(float) * (size_t)(rows * ldc));
    fill_late(A, M, K, lda, K / 2, M - 1, K > 2 ? 1 : -1);
    for (int64_t i = 0; i < K * ldb; i++) B[i] = (i % ldb) % 8 == 1 ? 0.0f : next_value();
    for (int64_t i = 0; i < rows * ldc; i++) out0[i] = next_value();
    nnrt_sgemm_nn(M, N, K, 1, A, lda, B, ldb, 0, C, ldc);
    static const float special[] = {0.0f, NAN, INFINITY, -INFINITY, -0.0f};
    for (int64_t j = 0; j < N; j++)
        bias[j] = j % 8 == 1                 ? 0.0f
                  : j % 8 == 6               ? -C[j]
                  : j % 8 >= 2 && j % 8 <= 5 ? special[j % 8 - 1]
                                             : next_value();
    for (int o = 0; o < 2; o++) {
        out[o] = malloc(sizeof(float) * (size_t)(rows * ldc));
        memcpy(out[o], out0, sizeof(float) * (size_t)(rows * ldc));
    }
    float *T = outputs & 1 ? out[0] : NULL, *H = outputs & 2 ? out[1] : NULL;
    nnrt_sgemm_nn_bias_relu(M, N, K, A, lda, B, ldb, bias, T, H, ldc);
    compared++;
    for (int o = 0; o < 2; o++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < ldc; j++) {
                float got = out[o][i * ldc + j], want = out0[i * ldc + j];
                if (i < M && j < N && (o == 0 ? T : H)) {
                    float t = C[i * ldc + j] + bias[j];
                    want = o == 0 ? t : !(t <= 0) ? t : 0.0f;
                }
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail(o == 0 ? "bias" : "bias relu", M, N, K, outputs, 0, i, j, got, want);
            }
    /* A team's blocks of it (nnrt_team_sgemm_bias_relu, which stores T or H, not both): the
     * whole call's bits wherever the whole product takes the kernel, which adds in order of k
     * in every block; nothing written outside T and H. */
    for (int n = 2; kernel && outputs != 3 && nnrt_sgemm_nn_in_place(M, K, N) && n <= 3; n++) {
        float *part[2];
        for (int o = 0; o < 2; o++) {
            part[o] = malloc(sizeof(float) * (size_t)(rows * ldc));
            memcpy(part[o], out0, sizeof(float) * (size_t)(rows * ldc));
        }
        for (int p = 0; p < n; p++)
            nnrt_team_sgemm_bias_relu_block(p, n, (int)M, (int)N, (int)K, A, (int)lda, B, (int)ldb,
                                            bias, T ? part[0] : NULL, H ? part[1] : NULL, (int)ldc);
        compared++;
        for (int o = 0; o < 2; o++) {
            for (int64_t e = 0; e < rows * ldc; e++)
                if (memcmp(&part[o][e], &out[o][e], sizeof(float)) != 0) {
                    fail("bias relu blocks", M, N, K, outputs, (float)n, e / ldc, e % ldc,
                         part[o][e], out[o][e]);
                    break;
                }
            free(part[o]);
        }
    }
    /* the list kept for Xᵀ·dZ: A's, and the same C whether taken or made again */
    int64_t G = 64;
    float *D = malloc(sizeof(float) * (size_t)(M * G)),
          *W1 = malloc(sizeof(float) * (size_t)(K * G));
    float *W2 = malloc(sizeof(float) * (size_t)(K * G));
    for (int64_t i = 0; i < M * G; i++) D[i] = next_value();
    for (int64_t i = 0; i < K * G; i++) W1[i] = W2[i] = next_value();
    nnrt_sgemm_tn_again(K, G, M, -0.5f, A, lda, D, G, 1, W1, G);
    nnrt_sgemm_tn(K, G, M, -0.5f, A, lda, D, G, 1, W2, G);
    if (memcmp(W1, W2, sizeof(float) * (size_t)(K * G)) != 0)
        fail("tn again after bias relu", M, G, K, kernel, 1, 0, 0, 0, 0);
    free(D);
    free(W1);
    free(W2);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(out0);
    free(out[0]);
    free(out[1]);
}

/* Shapes the kernel takes (N 40, 128; 1 to 256 rows) and ones it leaves to OpenBLAS (N 10,
 * 300 rows), K from 1 to a digit's 784. */
static void bias_relu(bool kernel) {
    static const int64_t M[] = {1, 7, 32, 300}, K[] = {1, 17, 784}, N[] = {10, 40, 128};
    for (int m = 0; m < 4; m++)
        for (int k = 0; k < 3; k++)
            for (int n = 0; n < 3; n++)
                for (int outputs = 1; outputs <= 3; outputs++)
                    bias_relu_case(M[m], K[k], N[n], outputs, kernel);
}

/* nnrt_sgemm_tn's choice: as nnrt_sgemm_nn's, but at least two tiles of columns (with one,
 * the kernel lost to OpenBLAS: 7.6 against 6.6 us for [784, 32] on digits), a batch K of at
 * most 256 and at most 8192 rows of C. */
static void check_tn_choice(nnrt_packed_path path) {
    static const int64_t in_place[][3] = {{784, 32, 128}, {784, 32, 64},  {784, 128, 128},
                                          {784, 256, 56}, {8192, 32, 96}, {1, 1, 1000}};
    static const int64_t blas[][3] = {{784, 32, 32},  {784, 32, 10},  {784, 257, 128},
                                      {8193, 32, 64}, {784, 32, 100}, {784, 32, 48}};
    for (size_t i = 0; i < sizeof in_place / sizeof *in_place; i++) {
        const int64_t *c = in_place[i];
        if (nnrt_sgemm_tn_in_place(c[0], c[1], c[2]) != (path == NNRT_PACKED_AVX512))
            fail("tn choice", c[0], c[2], c[1], 0, 0, 0, 0, 0, 0);
    }
    for (size_t i = 0; i < sizeof blas / sizeof *blas; i++) {
        const int64_t *c = blas[i];
        if (nnrt_sgemm_tn_in_place(c[0], c[1], c[2]))
            fail("tn choice", c[0], c[2], c[1], 0, 0, 0, 0, 0, 0);
    }
}

/* nnrt_sgemm_nn's choice (where the kernel measured faster than OpenBLAS): only with
 * AVX-512, at most 256 rows, N filling 7/8 of the tiles' 32 lanes, B of at most 2^18
 * elements. Each case {M, K, N}. */
static void check_choice(nnrt_packed_path path) {
    static const int64_t in_place[][3] = {
        {32, 784, 28},   {32, 784, 31},  {32, 784, 32},   {32, 784, 56},  {32, 784, 64},
        {32, 784, 84},   {32, 784, 96},  {32, 784, 112},  {32, 784, 128}, {1, 256, 1000},
        {128, 512, 512}, {256, 1, 1024}, {256, 784, 128}, {1, 784, 128}};
    static const int64_t blas[][3] = {
        {32, 784, 0},     {32, 784, 1},   {32, 784, 10},   {32, 784, 16},
        {32, 784, 27},    {32, 784, 33},  {32, 784, 48},   {32, 784, 55},
        {32, 784, 65},    {32, 784, 100}, {32, 784, 129},  {32, 784, 512},
        {32, 1000, 1000}, {32, 513, 512}, {257, 784, 128}, {2048, 65, 1024}};
    for (size_t i = 0; i < sizeof in_place / sizeof *in_place; i++) {
        const int64_t *c = in_place[i];
        if (nnrt_sgemm_nn_in_place(c[0], c[1], c[2]) != (path == NNRT_PACKED_AVX512))
            fail("choice", c[0], c[2], c[1], 0, 0, 0, 0, 0, 0);
    }
    for (size_t i = 0; i < sizeof blas / sizeof *blas; i++) {
        const int64_t *c = blas[i];
        if (nnrt_sgemm_nn_in_place(c[0], c[1], c[2]))
            fail("choice", c[0], c[2], c[1], 0, 0, 0, 0, 0, 0);
    }
}

/* Each path the CPU has, from the best down: the kernels exactly, OpenBLAS to rounding. The
 * product that reads B in place runs the kernel at every N here (nnrt_sgemm_nn_as), so that
 * every edge of its masks is checked, not only the widths nnrt_sgemm_nn gives it. */
int main(void) {
    static const char *const names[] = {"blas", "avx2", "avx512"};
    for (int most = NNRT_PACKED_AVX512; most >= NNRT_PACKED_BLAS; most--) {
        nnrt_packed_gemm_limit((nnrt_packed_path)most);
        nnrt_packed_path path = nnrt_packed_gemm_path();
        if ((int)path != most) continue; /* the CPU has not got it: a lower limit tests the next */
        printf("path %s\n", names[path]);
        check_choice(path);
        check_tn_choice(path);
        all_sizes(path != NNRT_PACKED_BLAS);
        tn_sizes(path != NNRT_PACKED_BLAS);
        late_values(path != NNRT_PACKED_BLAS);
        tn_again(path != NNRT_PACKED_BLAS);
        bias_relu(path != NNRT_PACKED_BLAS);
    }
    printf("compared %ld products, %ld differ\n", compared, differ);
    return differ ? 1 : 0;
}
