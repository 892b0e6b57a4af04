/* packed_gemm.c: products with a weight packed once per training step (packed_gemm.h).
 *
 * The AVX-512 kernel computes C in tiles of MR rows by NNRT_PACK_NR (32) columns, the tile's sums
 * in 2·MR AVX-512 registers for the whole of K: at each k it loads the panel's two vectors
 * op(B)[k][j..j+32) once and multiplies them by MR broadcast elements of A, so B is read
 * from one contiguous panel and A from its rows as they lie (it is small: the batch's
 * states). The panels are taken in the outer loop, so a panel stays in the cache while the
 * row blocks of A pass over it; A is taken in blocks of at most A_BLOCK_ELEMS elements, which
 * a large batch makes several, so that the block stays in L2 while all the panels pass. The
 * AVX2 kernel does the same with tiles of 6 rows by half a panel (it has 16 registers). */
#include "packed_gemm.h"

#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_KERNELS 1
#include <immintrin.h>
#else
#define HAVE_KERNELS 0
#endif

#define NR            NNRT_PACK_NR
#define MR            8           /* rows of an AVX-512 tile: 16 registers of sums */
#define MR2           6           /* rows of an AVX2 tile (16 columns): 12 of its 16 registers */
#define A_BLOCK_ELEMS (64 * 1024) /* 256 KB of A: half of a Zen 4's or Skylake-X's L2 */

static nnrt_packed_path path_limit = NNRT_PACKED_AVX512;

void nnrt_packed_gemm_limit(nnrt_packed_path most) {
    path_limit = most;
}

nnrt_packed_path nnrt_packed_gemm_path(void) {
#if HAVE_KERNELS
    if (path_limit >= NNRT_PACKED_AVX512 && __builtin_cpu_supports("avx512f"))
        return NNRT_PACKED_AVX512;
    if (path_limit >= NNRT_PACKED_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return NNRT_PACKED_AVX2;
#endif
    return NNRT_PACKED_BLAS;
}

/* ---- packing ---- */

/* op(B) = B ([K, N], row stride ldb): panel p's row k is B's row k, columns p*NR... */
static void pack_rows(int64_t K, int64_t N, const float *B, int64_t ldb, float *packed) {
    for (int64_t p = 0; p * NR < N; p++) {
        int64_t j0 = p * NR, width = N - j0 < NR ? N - j0 : NR;
        float *panel = packed + p * K * NR;
        for (int64_t k = 0; k < K; k++) {
            float *to = panel + k * NR;
            memcpy(to, B + k * ldb + j0, (size_t)width * sizeof *to);
            for (int64_t j = width; j < NR; j++) to[j] = 0;
        }
    }
}

/* op(B) = Bᵀ (B is [N, K]): panel p's column j is B's row p*NR + j. Taken KB elements of
 * the NR rows at a time, so that the panel's KB rows being written stay in L1. */
#define KB 64
static void pack_transposed(int64_t K, int64_t N, const float *B, int64_t ldb, float *packed) {
    for (int64_t p = 0; p * NR < N; p++) {
        int64_t j0 = p * NR, width = N - j0 < NR ? N - j0 : NR;
        float *panel = packed + p * K * NR;
        for (int64_t k0 = 0; k0 < K; k0 += KB) {
            int64_t k1 = K - k0 < KB ? K : k0 + KB;
            for (int64_t j = 0; j < width; j++) {
                const float *row = B + (j0 + j) * ldb;
                for (int64_t k = k0; k < k1; k++) panel[k * NR + j] = row[k];
            }
            for (int64_t j = width; j < NR; j++)
                for (int64_t k = k0; k < k1; k++) panel[k * NR + j] = 0;
        }
    }
}
#undef KB

void nnrt_sgemm_pack(int64_t K, int64_t N, const float *B, int64_t ldb, int32_t tb, float *packed) {
    if (nnrt_packed_gemm_path() == NNRT_PACKED_BLAS) return; /* the fallback reads B itself */
    if (tb)
        pack_transposed(K, N, B, ldb, packed);
    else
        pack_rows(K, N, B, ldb, packed);
}

/* ---- the kernels ---- */

#if HAVE_KERNELS
#define AVX512        __attribute__((target("avx512f")))
#define AVX2_FMA      __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE __attribute__((always_inline)) inline
/* Each loop over a tile's rows unrolled completely (clang does not read GCC's spelling). */
#if defined(__clang__)
#define UNROLL_ROWS _Pragma("unroll")
#else
#define UNROLL_ROWS _Pragma("GCC unroll 16")
#endif

/* C[0..mr)[0..32) (the columns the masks keep) = alpha · A[0..mr) · panel + beta · C. mr is a
 * constant at each call (tile_rows), so the sums are registers and the loops unroll. */
static ALWAYS_INLINE AVX512 void tile(int mr, int64_t K, const float *A, int64_t lda,
                                      const float *panel, float alpha, float beta, float *C,
                                      int64_t ldc, __mmask16 keep0, __mmask16 keep1) {
    __m512 sum0[MR], sum1[MR];
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) sum0[i] = sum1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(panel + k * NR), b1 = _mm512_loadu_ps(panel + k * NR + 16);
        UNROLL_ROWS
        for (int i = 0; i < mr; i++) {
            __m512 a = _mm512_set1_ps(A[i * lda + k]);
            sum0[i] = _mm512_fmadd_ps(a, b0, sum0[i]);
            sum1[i] = _mm512_fmadd_ps(a, b1, sum1[i]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        __m512 c0 = _mm512_mul_ps(va, sum0[i]), c1 = _mm512_mul_ps(va, sum1[i]);
        if (beta != 0) { /* beta = 0 never reads C: it may hold anything, NaN included */
            c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep0, c), c0);
            c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep1, c + 16), c1);
        }
        _mm512_mask_storeu_ps(c, keep0, c0);
        _mm512_mask_storeu_ps(c + 16, keep1, c1);
    }
}

/* One tile of mr <= MR rows: a constant mr for each case, so each is its own unrolled code. */
static AVX512 void tile_rows(int mr, int64_t K, const float *A, int64_t lda, const float *panel,
                             float alpha, float beta, float *C, int64_t ldc, __mmask16 keep0,
                             __mmask16 keep1) {
#define TILE(n)                                                                                    \
    case n: tile(n, K, A, lda, panel, alpha, beta, C, ldc, keep0, keep1); break;
    switch (mr) { TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) TILE(8) }
#undef TILE
}

/* The columns [j0, j0 + 32) of C that exist, as the masks of its two vectors. */
static void column_masks(int64_t N, int64_t j0, __mmask16 *keep0, __mmask16 *keep1) {
    int64_t width = N - j0 < NR ? N - j0 : NR;
    *keep0 = (__mmask16)(width >= 16 ? 0xffff : (1u << width) - 1);
    *keep1 = (__mmask16)(width >= 32 ? 0xffff : width > 16 ? (1u << (width - 16)) - 1 : 0);
}

static AVX512 void avx512_product(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                  int64_t lda, const float *packed, float beta, float *C,
                                  int64_t ldc) {
    int64_t block = A_BLOCK_ELEMS / (K > 0 ? K : 1) / MR * MR;
    if (block < MR) block = MR;
    for (int64_t i0 = 0; i0 < M; i0 += block) {
        int64_t rows = M - i0 < block ? M - i0 : block;
        for (int64_t p = 0; p * NR < N; p++) {
            __mmask16 keep0, keep1;
            column_masks(N, p * NR, &keep0, &keep1);
            const float *panel = packed + p * K * NR;
            for (int64_t i = i0; i < i0 + rows; i += MR) {
                int mr = (int)(i0 + rows - i < MR ? i0 + rows - i : MR);
                tile_rows(mr, K, A + i * lda, lda, panel, alpha, beta, C + i * ldc + p * NR, ldc,
                          keep0, keep1);
            }
        }
    }
}

/* AVX2 (16 registers): a tile is mr <= MR2 rows by one half of a panel, 16 columns, the sums
 * in 2·mr registers; the same sums in the same order as the AVX-512 tile, so both paths give
 * the same bits. width: the columns of the half that exist (1 to 16). */
static ALWAYS_INLINE AVX2_FMA void tile_avx2(int mr, int64_t K, const float *A, int64_t lda,
                                             const float *half, float alpha, float beta, float *C,
                                             int64_t ldc, __m256i keep0, __m256i keep1) {
    __m256 sum0[MR2], sum1[MR2];
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) sum0[i] = sum1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(half + k * NR), b1 = _mm256_loadu_ps(half + k * NR + 8);
        UNROLL_ROWS
        for (int i = 0; i < mr; i++) {
            __m256 a = _mm256_broadcast_ss(A + i * lda + k);
            sum0[i] = _mm256_fmadd_ps(a, b0, sum0[i]);
            sum1[i] = _mm256_fmadd_ps(a, b1, sum1[i]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    UNROLL_ROWS
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        __m256 c0 = _mm256_mul_ps(va, sum0[i]), c1 = _mm256_mul_ps(va, sum1[i]);
        if (beta != 0) {
            c0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, keep0), c0);
            c1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8, keep1), c1);
        }
        _mm256_maskstore_ps(c, keep0, c0);
        _mm256_maskstore_ps(c + 8, keep1, c1);
    }
}

static AVX2_FMA void tile_rows_avx2(int mr, int64_t K, const float *A, int64_t lda,
                                    const float *half, float alpha, float beta, float *C,
                                    int64_t ldc, __m256i keep0, __m256i keep1) {
#define TILE(n)                                                                                    \
    case n: tile_avx2(n, K, A, lda, half, alpha, beta, C, ldc, keep0, keep1); break;
    switch (mr) { TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) }
#undef TILE
}

static AVX2_FMA void avx2_product(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                  int64_t lda, const float *packed, float beta, float *C,
                                  int64_t ldc) {
    int64_t block = A_BLOCK_ELEMS / (K > 0 ? K : 1) / MR2 * MR2;
    if (block < MR2) block = MR2;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t i0 = 0; i0 < M; i0 += block) {
        int64_t rows = M - i0 < block ? M - i0 : block;
        for (int64_t j0 = 0; j0 < N; j0 += 16) { /* half panels */
            int width = (int)(N - j0 < 16 ? N - j0 : 16);
            __m256i keep0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(width), lanes);
            __m256i keep1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(width - 8), lanes);
            const float *half = packed + (j0 / NR) * K * NR + j0 % NR;
            for (int64_t i = i0; i < i0 + rows; i += MR2) {
                int mr = (int)(i0 + rows - i < MR2 ? i0 + rows - i : MR2);
                tile_rows_avx2(mr, K, A + i * lda, lda, half, alpha, beta, C + i * ldc + j0, ldc,
                               keep0, keep1);
            }
        }
    }
}
#endif

void nnrt_sgemm_packed(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, int32_t tb, const float *packed, float beta,
                       float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if HAVE_KERNELS
    switch (nnrt_packed_gemm_path()) {
    case NNRT_PACKED_AVX512: avx512_product(M, N, K, alpha, A, lda, packed, beta, C, ldc); return;
    case NNRT_PACKED_AVX2: avx2_product(M, N, K, alpha, A, lda, packed, beta, C, ldc); return;
    case NNRT_PACKED_BLAS: break;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
