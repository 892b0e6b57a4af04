/* in_place_gemm.c: products that read B where it lies and skip A's zero columns
 * (in_place_gemm.h).
 *
 * A tile is 8 rows by 32 columns of C, its sums in 16 AVX-512 registers for the whole of K: at
 * each k it loads B's row k (its 32 columns, with masks at the right edge) once and multiplies
 * it by 8 broadcast elements of A. Which k a tile runs over and where its rows of A and C lie
 * make the two products: X·W runs over the listed k (A's columns with a value other than 0),
 * rows i consecutive; Xᵀ·dZ runs over every k, rows i the listed ones, A read down its
 * columns. Either way each element sums its k in order, one fused multiply-add each, then
 * alpha·sum, then beta·C added in one more (beta = 0 never reads C: it may hold anything). */
#include "in_place_gemm.h"

#include <cblas.h>

#include "kernel_macros.h"
#include "lines_ahead.h"
#include "packed_gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_KERNEL 1
#include <immintrin.h>
#else
#define HAVE_KERNEL 0
#endif

#define ROWS          8  /* rows of a tile */
#define COLS          32 /* columns of a tile: two vectors of 16 floats */
#define LANES         16
#define A_BLOCK_ELEMS (64 * 1024) /* 256 KB of A: rows taken together while B's tiles pass */

#define NN_MAX_M   256       /* rows of A and C (X·W) */
#define TN_MAX_K   256       /* rows of A and B (Xᵀ·dZ): the batch */
#define MAX_B      (1 << 18) /* elements of B: 1 MB of floats */
#define MAX_LISTED NNRT_IN_PLACE_MAX_LISTED
_Static_assert(MAX_LISTED % LANES == 0, "a list of nonzero columns is stored 16 at a time");

static int has_kernel(void) {
    return nnrt_packed_gemm_path() == NNRT_PACKED_AVX512;
}

int nnrt_sgemm_nn_in_place(int64_t M, int64_t K, int64_t N) {
    return M <= NN_MAX_M && K <= MAX_LISTED && nnrt_in_place_fills_lanes(N) && K * N <= MAX_B &&
           has_kernel();
}

int nnrt_sgemm_tn_in_place(int64_t M, int64_t K, int64_t N) {
    return nnrt_sgemm_tn_shape_fits(M, N) && K <= TN_MAX_K && K * N <= MAX_B && has_kernel();
}

#if HAVE_KERNEL
#define AVX512 __attribute__((target("avx512f")))

/* The k a tile runs over: ks[0..n) when ks, else 0..n-1. */
typedef struct k_list {
    const int32_t *ks;
    int64_t n;
} k_list;

/* What a tile of nnrt_sgemm_nn_bias_relu stores in place of alpha·sum (+ beta·C): t = alpha·sum
 * + bias, rounded twice as the compiled loop rounds, into t_rows unless NULL, and relu(t) into
 * h_rows unless NULL. bias and the rows point at the tile's first column. */
typedef struct epilogue {
    const float *bias;
    float *t_rows[ROWS], *h_rows[ROWS];
    int t, h; /* which of the two it stores */
} epilogue;

/* relu as the compiler has it: t where t > 0 or t is NaN (not t <= 0), else +0. */
static ALWAYS_INLINE AVX512 __m512 relu_vector(__m512 t) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_NLE_UQ), t);
}

static ALWAYS_INLINE AVX512 void store_with_epilogue(int mr, const __m512 *sum0, const __m512 *sum1,
                                                     __m512 va, const epilogue *then,
                                                     __mmask16 keep0, __mmask16 keep1) {
    __m512 b0 = _mm512_maskz_loadu_ps(keep0, then->bias);
    __m512 b1 = _mm512_maskz_loadu_ps(keep1, then->bias + LANES);
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) {
        __m512 t0 = _mm512_add_ps(_mm512_mul_ps(va, sum0[i]), b0);
        __m512 t1 = _mm512_add_ps(_mm512_mul_ps(va, sum1[i]), b1);
        if (then->t) {
            _mm512_mask_storeu_ps(then->t_rows[i], keep0, t0);
            _mm512_mask_storeu_ps(then->t_rows[i] + LANES, keep1, t1);
        }
        if (then->h) {
            _mm512_mask_storeu_ps(then->h_rows[i], keep0, relu_vector(t0));
            _mm512_mask_storeu_ps(then->h_rows[i] + LANES, keep1, relu_vector(t1));
        }
    }
}

/* C's tile (the columns the masks keep) = alpha · A's rows · B + beta · C, element (i, k) of A
 * at A[i * a_row + k * a_k], row i of C at c[i]. mr and listed are constants at each call
 * (tile_of), so each case is its own unrolled code with its sums in registers; A's rows are
 * strides of one pointer rather than eight pointers, which would leave too few registers for
 * the loop. next, unless NULL, is the next tile's columns of B, asked for row by row: rows far
 * apart (2 KB for 512 columns) cross a page every row or two, where the caches' prefetchers
 * stop, and a weight of a megabyte read cold ran at half OpenBLAS's speed without it. */
static ALWAYS_INLINE AVX512 void tile(int mr, int listed, const float *A, int64_t a_row,
                                      int64_t a_k, k_list k_of, const float *B, int64_t ldb,
                                      const float *next, float alpha, float beta, float *const *c,
                                      const epilogue *then, __mmask16 keep0, __mmask16 keep1) {
    __m512 sum0[ROWS], sum1[ROWS];
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) sum0[i] = sum1[i] = _mm512_setzero_ps();
    for (int64_t n = 0; n < k_of.n; n++) {
        int64_t k = listed ? k_of.ks[n] : n;
        const float *row = B + k * ldb;
        if (next) {
            _mm_prefetch((const char *)(next + k * ldb), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + k * ldb + LANES), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_maskz_loadu_ps(keep0, row);
        __m512 b1 = _mm512_maskz_loadu_ps(keep1, row + LANES);
        const float *a = A + k * a_k;
        UNROLL_ROWS
        for (int i = 0; i < mr; i++) {
            __m512 v = _mm512_set1_ps(a[i * a_row]);
            sum0[i] = _mm512_fmadd_ps(v, b0, sum0[i]);
            sum1[i] = _mm512_fmadd_ps(v, b1, sum1[i]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (then) {
        store_with_epilogue(mr, sum0, sum1, va, then, keep0, keep1);
        return;
    }
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) {
        float *ci = c[i];
        __m512 c0 = _mm512_mul_ps(va, sum0[i]), c1 = _mm512_mul_ps(va, sum1[i]);
        if (beta != 0) {
            c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep0, ci), c0);
            c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep1, ci + LANES), c1);
        }
        _mm512_mask_storeu_ps(ci, keep0, c0);
        _mm512_mask_storeu_ps(ci + LANES, keep1, c1);
    }
}

/* One tile of mr <= ROWS rows, each case its own code. */
static AVX512 void tile_of(int mr, int listed, const float *A, int64_t a_row, int64_t a_k,
                           k_list k_of, const float *B, int64_t ldb, const float *next, float alpha,
                           float beta, float *const *c, const epilogue *then, __mmask16 keep0,
                           __mmask16 keep1) {
#define TILE(n)                                                                                    \
    case n:                                                                                        \
        if (listed)                                                                                \
            tile(n, 1, A, a_row, a_k, k_of, B, ldb, next, alpha, beta, c, then, keep0, keep1);     \
        else                                                                                       \
            tile(n, 0, A, a_row, a_k, k_of, B, ldb, next, alpha, beta, c, then, keep0, keep1);     \
        break;
    switch (mr) { TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) TILE(8) }
#undef TILE
}

/* The first width (0 to 32) of a tile's columns, as the masks of its two vectors. */
static void column_masks(int64_t width, __mmask16 *keep0, __mmask16 *keep1) {
    *keep0 = (__mmask16)(width >= 16 ? 0xffff : (1u << width) - 1);
    *keep1 = (__mmask16)(width >= 32 ? 0xffff : width > 16 ? (1u << (width - 16)) - 1 : 0);
}

/* 0, 1, ..., 15: each lane's place in a vector. */
static ALWAYS_INLINE AVX512 __m512i lane_numbers(void) {
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* The columns of [rows, cols] (row stride ld) holding a value that is not ±0 (NaN is one),
 * in order, into list; returns how many. list has room for cols rounded up to 16: each block
 * of 16 columns stores 16 entries at its place in the list, the ones kept first.
 *
 * No branch follows the data: every block reads the same rows, and a block's columns join
 * the list by a compress of its mask. A batch's zeros change from step to step, and the
 * loops whose counts followed them (a block's rows until all its columns had a value, its
 * columns one by one) mispredicted: W1's step on a fresh batch of digits took 2 µs more
 * than on the same batch again, at the same count of columns (bench/README.md, "W1's loop
 * on one core"). Reading stops after a group of rows once every column has a value, the
 * one test that follows the data, so a dense A costs ROWS rows of it. */
static AVX512 int64_t nonzero_columns(const float *A, int64_t rows, int64_t cols, int64_t ld,
                                      int32_t *list) {
    __mmask16 found[MAX_LISTED / LANES];
    if (cols <= 0) return 0;
    int64_t blocks = (cols + LANES - 1) / LANES;
    __mmask16 last, unused; /* the columns the last block has */
    column_masks(cols - (blocks - 1) * LANES, &last, &unused);
    for (int64_t b = 0; b < blocks; b++) found[b] = 0;
    for (int64_t i0 = 0; i0 < rows; i0 += ROWS) {
        int64_t end = i0 + ROWS < rows ? i0 + ROWS : rows;
        for (int64_t i = i0; i < end; i++) {
            const float *row = A + i * ld;
            for (int64_t b = 0; b < blocks; b++) {
                __mmask16 keep = b + 1 < blocks ? 0xffff : last;
                __m512 v = _mm512_maskz_loadu_ps(keep, row + b * LANES);
                found[b] |= _mm512_mask_cmp_ps_mask(keep, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            }
        }
        __mmask16 all = found[blocks - 1] == last ? 0xffff : 0;
        for (int64_t b = 0; b + 1 < blocks; b++) all &= found[b];
        if (all == 0xffff) break;
    }
    int64_t n = 0;
    for (int64_t b = 0; b < blocks; b++) {
        __m512i columns = _mm512_add_epi32(lane_numbers(), _mm512_set1_epi32((int)(b * LANES)));
        _mm512_storeu_si512(list + n, _mm512_maskz_compress_epi32(found[b], columns));
        n += __builtin_popcount(found[b]);
    }
    return n;
}

/* ---- the list a step's weight gradient takes from its forward product ----
 * Listing A's nonzero columns reads all of A: about 1 µs of W1's step on a Zen 4 for a batch
 * of 32 digits, and the first layer's Xᵀ·dZ reads the batch that its X·W listed earlier in
 * the step. So the thread keeps the list of its last nnrt_sgemm_nn, with the A, rows, columns
 * and stride it was made from, and nnrt_sgemm_tn_again (whose caller promises that A is
 * unchanged since this thread's last nnrt_sgemm_nn on it) takes it when they all match. An
 * nnrt_sgemm_nn on the same A that makes no list (OpenBLAS's) forgets it, so a kept list is
 * never older than the last nnrt_sgemm_nn on its A. */
typedef struct kept_list {
    const float *A; /* NULL: none */
    int64_t rows, cols, ld, n;
    int32_t columns[MAX_LISTED];
} kept_list;

static _Thread_local kept_list kept;

/* C = alpha·A·B + beta·C over the k that A's columns list (kept for the step's Xᵀ·dZ). Rows are
 * taken in blocks of A that stay in L2 while B's tiles pass over them. With a bias (beta 0),
 * the tiles store alpha·A·B + bias into T and its relu into H instead, each unless NULL
 * (nnrt_sgemm_nn_bias_relu), C unused. */
static AVX512 void nn_product(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                              int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                              int64_t ldc, const float *bias, float *T, float *H) {
    kept.A = NULL;
    int64_t n = nonzero_columns(A, M, K, lda, kept.columns);
    kept.A = A, kept.rows = M, kept.cols = K, kept.ld = lda, kept.n = n;
    k_list k_of = {kept.columns, n};
    int listed = k_of.n < K; /* else every k, without the list's loads */
    int64_t block = A_BLOCK_ELEMS / (K > 0 ? K : 1) / ROWS * ROWS;
    if (block < ROWS) block = ROWS;
    for (int64_t i0 = 0; i0 < M; i0 += block) {
        int64_t rows = M - i0 < block ? M - i0 : block;
        for (int64_t j0 = 0; j0 < N; j0 += COLS) {
            __mmask16 keep0, keep1;
            column_masks(N - j0 < COLS ? N - j0 : COLS, &keep0, &keep1);
            const float *next = j0 + COLS < N ? B + j0 + COLS : NULL; /* the block's first tile */
            for (int64_t i = i0; i < i0 + rows; i += ROWS) {
                int mr = (int)(i0 + rows - i < ROWS ? i0 + rows - i : ROWS);
                float *c[ROWS];
                epilogue then = {.bias = bias ? bias + j0 : NULL, .t = T != NULL, .h = H != NULL};
                for (int r = 0; r < mr; r++) {
                    if (bias) {
                        then.t_rows[r] = T ? T + (i + r) * ldc + j0 : NULL;
                        then.h_rows[r] = H ? H + (i + r) * ldc + j0 : NULL;
                    } else {
                        c[r] = C + (i + r) * ldc + j0;
                    }
                }
                tile_of(mr, listed, A + i * lda, lda, 1, k_of, B + j0, ldb, i == i0 ? next : NULL,
                        alpha, beta, c, bias ? &then : NULL, keep0, keep1);
            }
        }
    }
}

/* Asks for the line at p to be written: for a line another core holds (HOGWILD!'s threads
 * all write the weight), a prefetch to read would fetch it shared and the store would then
 * have to take it again. (PREFETCHW: every x86-64 with AVX-512 has it.) */
static ALWAYS_INLINE void prefetch_to_write(const float *p) {
    __asm__ volatile("prefetchw %0" : : "m"(*p));
}

/* A row of C whose column of A is all zeros, as the whole product leaves it: alpha·0 +
 * beta·C, one rounding. When beta is 1 it is not touched (the whole product would turn a -0
 * there into +0 when alpha is positive). */
static AVX512 void zero_column_row(float *c, int64_t N, float alpha, float beta) {
    if (beta == 1) return;
    __m512 zero = _mm512_set1_ps(alpha * 0.0f), vb = _mm512_set1_ps(beta);
    for (int64_t j = 0; j < N; j += LANES) {
        __mmask16 keep, unused;
        column_masks(N - j, &keep, &unused);
        __m512 v = beta == 0 ? zero : _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep, c + j), zero);
        _mm512_mask_storeu_ps(c + j, keep, v);
    }
}

/* How many of the listed rows from rows[0], at most ROWS of the `left`, follow it one by one:
 * the rows of C a tile takes, whose columns of A lie side by side. */
static AVX512 int run_of_rows(const int32_t *rows, int64_t left) {
    int most = (int)(left < ROWS ? left : ROWS);
    __mmask16 have = (__mmask16)((1u << most) - 1);
    __m512i want = _mm512_add_epi32(_mm512_set1_epi32(rows[0]), lane_numbers());
    __mmask16 same = _mm512_mask_cmpeq_epi32_mask(have, _mm512_maskz_loadu_epi32(have, rows), want);
    return __builtin_ctz(~(unsigned)same);
}

/* C = alpha·Aᵀ·B + beta·C (A is [K, M]) for the rows that A's columns list; the others as
 * the whole product leaves them (zero_column_row). A tile takes at most 8 listed rows whose
 * columns of A are consecutive (run_of_rows), read where they lie: a run of the list shorter
 * than 8, or its end, gets a tile of fewer rows. Copying 8 columns that are not consecutive
 * into a block first, as OpenBLAS packs A, took 2.2 µs of W1's 87 µs step on digits (a group
 * in three straddled two runs of the list); tiles of fewer rows cost less (bench/README.md,
 * "W1's loop on one core"). */
static AVX512 void tn_product(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                              int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                              int64_t ldc, int again) {
    int32_t own[MAX_LISTED];
    const int32_t *rows = own;
    int64_t n_rows;
    if (again && kept.A == A && kept.rows == K && kept.cols == M && kept.ld == lda)
        rows = kept.columns, n_rows = kept.n;
    else
        n_rows = nonzero_columns(A, K, M, lda, own);
    k_list every_k = {NULL, K};
    rt_lines_ahead_pace((n_rows + ROWS - 1) / ROWS * ((N + COLS - 1) / COLS));
    for (int64_t r = 0, mr; r < n_rows; r += mr) {
        mr = run_of_rows(rows + r, n_rows - r);
        float *c[ROWS];
        for (int i = 0; i < mr; i++) c[i] = C + rows[r + i] * ldc;
        const float *a = A + rows[r];
        for (int64_t j0 = 0; j0 < N; j0 += COLS) {
            __mmask16 keep0, keep1;
            column_masks(N - j0 < COLS ? N - j0 : COLS, &keep0, &keep1);
            float *cj[ROWS];
            rt_lines_ahead_ask(); /* the next batch's lines, a few a tile (lines_ahead.h) */
            for (int i = 0; i < mr; i++) {
                cj[i] = c[i] + j0;
                prefetch_to_write(cj[i] + COLS);
                prefetch_to_write(cj[i] + COLS + LANES);
            }
            tile_of((int)mr, 0, a, 1, lda, every_k, B + j0, ldb, NULL, alpha, beta, cj, NULL, keep0,
                    keep1);
        }
    }
    if (beta == 1) return; /* the skipped rows stay as they are: no pass over the list */
    for (int64_t i = 0, r = 0; i < M; i++) {
        if (r < n_rows && rows[r] == i)
            r++;
        else
            zero_column_row(C + i * ldc, N, alpha, beta);
    }
}
#endif

void nnrt_sgemm_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    nnrt_sgemm_nn_as(nnrt_sgemm_nn_in_place(M, K, N), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nnrt_sgemm_nn_as(int in_place, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if HAVE_KERNEL
    if (in_place && K <= MAX_LISTED && has_kernel()) {
        nn_product(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL, NULL);
        return;
    }
    if (kept.A == A) kept.A = NULL; /* no list of A's content now */
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* relu as the compiler has it: t when t > 0 or t is NaN, else +0. */
static float relu_of(float t) {
    return !(t <= 0) ? t : 0.0f;
}

void nnrt_sgemm_nn_bias_relu(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                             const float *B, int64_t ldb, const float *bias, float *T, float *H,
                             int64_t ldc) {
    nnrt_sgemm_nn_bias_relu_as(nnrt_sgemm_nn_in_place(M, K, N), M, N, K, A, lda, B, ldb, bias, T, H,
                               ldc);
}

void nnrt_sgemm_nn_bias_relu_as(int in_place, int64_t M, int64_t N, int64_t K, const float *A,
                                int64_t lda, const float *B, int64_t ldb, const float *bias,
                                float *T, float *H, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if HAVE_KERNEL
    if (in_place && K <= MAX_LISTED && has_kernel()) {
        nn_product(M, N, K, 1.0f, A, lda, B, ldb, 0.0f, NULL, ldc, bias, T, H);
        return;
    }
    if (kept.A == A) kept.A = NULL; /* no list of A's content now */
#endif
    float *C = T ? T : H; /* the product, then the bias and relu over it */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float t = C[i * ldc + j] + bias[j];
            if (T) T[i * ldc + j] = t;
            if (H) H[i * ldc + j] = relu_of(t);
        }
}

void nnrt_sgemm_tn_as(int in_place, int again, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if HAVE_KERNEL
    if (in_place && M <= MAX_LISTED && K <= TN_MAX_K && has_kernel()) {
        tn_product(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, again);
        return;
    }
#else
    (void)again;
#endif
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda,
                B, (int)ldb, beta, C, (int)ldc);
}

void nnrt_sgemm_tn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    nnrt_sgemm_tn_as(nnrt_sgemm_tn_in_place(M, K, N), 0, M, N, K, alpha, A, lda, B, ldb, beta, C,
                     ldc);
}

void nnrt_sgemm_tn_again(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    nnrt_sgemm_tn_as(nnrt_sgemm_tn_in_place(M, K, N), 1, M, N, K, alpha, A, lda, B, ldb, beta, C,
                     ldc);
}
