/* packed_gemm.c: products with a weight packed once per training step (packed_gemm.h).
 *
 * The kernels (packed_tile.inc, once for AVX-512 and once for AVX2) compute C in tiles of a
 * few rows by one panel of NNRT_PACK_NR (32) columns (AVX-512; half a panel with AVX2), the
 * tile's sums in registers for the whole of K, so B is read from one contiguous panel and A
 * from its rows as they lie (it is small: the batch's states). The panels are taken in the
 * outer loop, so a panel stays in the cache while the row blocks of A pass over it; A is taken
 * in blocks of at most A_BLOCK_ELEMS elements, which a large batch makes several, so that the
 * block stays in L2 while all the panels pass. */
#include "packed_gemm.h"

#include <cblas.h>
#include <string.h>

#include "kernel_macros.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_KERNELS 1
#include <immintrin.h>
#else
#define HAVE_KERNELS 0
#endif

#define NR            NNRT_PACK_NR
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

/* AVX-512: a tile is 8 rows by a whole panel, 16 registers of sums. */
#define KERNEL(name)        avx512_##name
#define TARGET              __attribute__((target("avx512f")))
#define VEC                 __m512
#define LANES               16
#define ROWS                8
#define MASK                __mmask16
#define VZERO()             _mm512_setzero_ps()
#define VSET1(x)            _mm512_set1_ps(x)
#define VLOADU(p)           _mm512_loadu_ps(p)
#define VMUL(a, b)          _mm512_mul_ps(a, b)
#define VFMADD(a, b, c)     _mm512_fmadd_ps(a, b, c)
#define VMASKLOAD(m, p)     _mm512_maskz_loadu_ps(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
/* The first width (0 to 32) of a tile's columns, as the masks of its two vectors. */
static void avx512_column_masks(int width, __mmask16 *keep0, __mmask16 *keep1) {
    *keep0 = (__mmask16)(width >= 16 ? 0xffff : (1u << width) - 1);
    *keep1 = (__mmask16)(width >= 32 ? 0xffff : width > 16 ? (1u << (width - 16)) - 1 : 0);
}
#include "packed_tile.inc"
#undef KERNEL
#undef TARGET
#undef VEC
#undef LANES
#undef ROWS
#undef MASK
#undef VZERO
#undef VSET1
#undef VLOADU
#undef VMUL
#undef VFMADD
#undef VMASKLOAD
#undef VMASKSTORE

/* AVX2 (16 registers): a tile is 6 rows by half a panel (16 columns), 12 registers of sums. */
#define KERNEL(name)        avx2_##name
#define TARGET              __attribute__((target("avx2,fma")))
#define VEC                 __m256
#define LANES               8
#define ROWS                6
#define MASK                __m256i
#define VZERO()             _mm256_setzero_ps()
#define VSET1(x)            _mm256_set1_ps(x)
#define VLOADU(p)           _mm256_loadu_ps(p)
#define VMUL(a, b)          _mm256_mul_ps(a, b)
#define VFMADD(a, b, c)     _mm256_fmadd_ps(a, b, c)
#define VMASKLOAD(m, p)     _mm256_maskload_ps(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
static TARGET void avx2_column_masks(int width, __m256i *keep0, __m256i *keep1) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    *keep0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(width), lanes);
    *keep1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(width - 8), lanes);
}
#include "packed_tile.inc"
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
