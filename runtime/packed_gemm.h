/* packed_gemm.h: the product of a scan's step with a weight that does not change during the
 * training step (docs/codegen.md, "Products with a packed weight").
 *
 * An unrolled recurrence multiplies a small matrix (the batch's states, M = batch rows) by
 * the same weight at every step: h_(t-1) · Wh forward, dG_t · Whᵀ backward. OpenBLAS packs
 * its B operand again on every call, which at M = 32 costs as much as a third of the product.
 * So the compiled model packs the weight once per call of an entry point,
 *
 *   nnrt_sgemm_pack(K, N, B, ldb, tb, packed)
 *
 * into panels of NNRT_PACK_NR columns (panel p holds op(B)[k][p*NR + j] at
 * packed[(p*K + k)*NR + j], the last panel padded with zeros), and every step's product is
 *
 *   nnrt_sgemm_packed(M, N, K, alpha, A, lda, B, ldb, tb, packed, beta, C, ldc)
 *
 * C = alpha·A·op(B) + beta·C, all row-major, op(B) = B or Bᵀ (tb), with a register-blocked
 * AVX-512 (or AVX2) micro-kernel that reads the packed panels and A as it is. beta = 0 never
 * reads C. On a CPU without AVX2 the pack does nothing and the product is cblas_sgemm of B:
 * the packed buffer is then unused (its size still comes from the static memory plan,
 * nnrt_packed_elems, so that one executable runs on both). Nothing is allocated.
 *
 * The kernel sums each element's K products in order k = 0, 1, ..., one fused multiply-add
 * each: the rounding differs from OpenBLAS's (which splits K differently), so a model's f32
 * results differ in the last bits from a build that calls OpenBLAS for these products. */
#ifndef NNRT_PACKED_GEMM_H
#define NNRT_PACKED_GEMM_H

#include <stdint.h>

#define NNRT_PACK_NR 32 /* columns of a panel: two AVX-512 vectors of floats */

/* Elements of the packed form of a K × N operand (the compiler reserves them in the plan). */
static inline int64_t nnrt_packed_elems(int64_t K, int64_t N) {
    return K * ((N + NNRT_PACK_NR - 1) / NNRT_PACK_NR) * NNRT_PACK_NR;
}

/* op(B) (K × N; B is [K, N] with row stride ldb, or [N, K] when tb) into packed. */
void nnrt_sgemm_pack(int64_t K, int64_t N, const float *B, int64_t ldb, int32_t tb, float *packed);

/* C = alpha·A·op(B) + beta·C with op(B) read from packed (or from B on the fallback). */
void nnrt_sgemm_packed(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, int32_t tb, const float *packed, float beta,
                       float *C, int64_t ldc);

/* Which path the two functions take: the AVX-512 kernel, else the AVX2 one (with FMA), else
 * OpenBLAS, as the CPU allows; nnrt_packed_gemm_limit caps it (tests check each path on a CPU
 * that has them all). Both kernels give the same bits. */
typedef enum nnrt_packed_path {
    NNRT_PACKED_BLAS,
    NNRT_PACKED_AVX2,
    NNRT_PACKED_AVX512,
} nnrt_packed_path;
nnrt_packed_path nnrt_packed_gemm_path(void);
void nnrt_packed_gemm_limit(nnrt_packed_path most);

#endif
