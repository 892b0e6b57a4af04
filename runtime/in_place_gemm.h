/* in_place_gemm.h: the products of a training step that read B where it lies, and skip what
 * the zeros of A make zero (docs/codegen.md, "Products that read B in place" and
 * "Products that skip the data's zeros").
 *
 *   nnrt_sgemm_nn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)   C = alpha·A·B + beta·C
 *   nnrt_sgemm_tn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)   C = alpha·Aᵀ·B + beta·C
 *
 * all row-major, A [M, K] (nn) or [K, M] (tn), B [K, N]: X·W forward and the weight gradient
 * Xᵀ·dZ. OpenBLAS packs B on every call, which at a batch of 32 rows costs it 40% of W1's
 * forward product (784 × 128); the AVX-512 kernel reads B's rows where they lie, as if they
 * were a packed panel's (the tiles load B with masks, so nothing past column N is read).
 *
 * A column of A that holds nothing but zeros (±0) adds nothing to any sum: the forward product
 * skips that k, the weight gradient leaves that row of C at alpha·0 + beta·C (as it is when
 * beta is 1, the update fused into the product). In a batch of 32 MNIST digits 42% of the 784
 * pixels are 0 in every image (the border), so 42% of W1's multiply-adds and of its rows' updates
 * go. Each sum still adds its other k in order, one fused multiply-add each, so the bits are those
 * of the whole product, but where a skipped term would have been 0·inf or 0·NaN (B not finite: the
 * whole product has a NaN there, this one not) and for the sign of a zero in a row left untouched.
 * NaN in A counts as not zero.
 *
 * The kernel runs where the CPU has AVX-512, N fills at least 7/8 of the tiles' 32-column
 * lanes (N = 28..32, 56..64, 84..96, 112..128, ...) and B holds at most 2^18 elements (1 MB);
 * nn with M at most 256 rows, tn with N above 32, K (the batch) at most 256 and M at most
 * 8192: nnrt_sgemm_nn_in_place(M, K, N) and nnrt_sgemm_tn_in_place(M, K, N). Elsewhere
 * cblas_sgemm, which measured faster: packing B costs OpenBLAS less the more rows share it (at
 * 512 rows and more the kernel was level or slower), idle lanes cost more than the packing (N
 * = 10, 48, 65 and 100), so does reading a larger B from beyond L2 (784 × 512, 1000 × 1000),
 * and AVX2 tiles lose to OpenBLAS's at any size; tn with one tile of columns lost even on
 * digits. The generated code calls nnrt_sgemm_tn only where A is the model's data (or the data
 * scaled by a constant): on a dense A it ran at 0.91-0.98 of OpenBLAS's speed. The _as forms take
 * the choice from the caller (in_place: the kernel at any size, if the CPU has AVX-512): the
 * threads of a team cut one product into blocks and choose by the whole product, so that every
 * block adds as the whole does. */
#ifndef NNRT_IN_PLACE_GEMM_H
#define NNRT_IN_PLACE_GEMM_H

#include <stdint.h>

/* The team's GEMM (nnrt_team_sgemm, workers.h) takes this for A's transpose where A is the
 * model's data and the product is to be nnrt_sgemm_tn's: CBLAS's conjugate transpose, which
 * for real matrices is the transpose (cblas_sgemm computes the same product with it). */
#define NNRT_TRANS_DATA 113 /* CblasConjTrans */

int nnrt_sgemm_nn_in_place(int64_t M, int64_t K, int64_t N);
void nnrt_sgemm_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void nnrt_sgemm_nn_as(int in_place, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* A forward layer's product with its bias and relu (the compiler's fused loop after it,
 * folded into the product): T = A·B + bias (each row of A·B plus the vector bias[0..N)), and
 * H = relu(T), each written when not NULL (at least one is), both with leading dimension
 * ldc. The same bits as nnrt_sgemm_nn with alpha 1 and beta 0 into T followed by the
 * compiled loop: the sum, then one rounded addition of the bias, then relu as the compiler
 * has it (t when t > 0 or t is NaN, else +0). In the kernel's tiles the sums are still in
 * registers; otherwise OpenBLAS's product, then a loop. */
void nnrt_sgemm_nn_bias_relu(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                             const float *B, int64_t ldb, const float *bias, float *T, float *H,
                             int64_t ldc);
/* The same with the choice of kernel from the caller, as nnrt_sgemm_nn_as: a team's block
 * chooses by the whole product (workers.h, nnrt_team_sgemm_bias_relu). */
void nnrt_sgemm_nn_bias_relu_as(int in_place, int64_t M, int64_t N, int64_t K, const float *A,
                                int64_t lda, const float *B, int64_t ldb, const float *bias,
                                float *T, float *H, int64_t ldc);

/* The most columns of A a list of the nonzero ones holds (on the stack: 32 KB). */
#define NNRT_IN_PLACE_MAX_LISTED 8192

/* Whether N columns fill at least 7/8 of the lanes of the kernel's tiles of 32 columns. */
static inline int nnrt_in_place_fills_lanes(int64_t N) {
    int64_t lanes = (N + 31) / 32 * 32; /* the last tile's unused columns included */
    return N > 0 && 8 * N >= 7 * lanes;
}

/* Whether an M × N product Aᵀ·B can take the kernel at all, whatever the CPU and the batch
 * (K): N above one tile of 32 columns, filling 7/8 of its tiles' lanes, and M at most the
 * list's 8192. The compiler calls cblas_sgemm directly where it cannot: a tiny model's step
 * takes a few hundred nanoseconds, and the calls it saves count there. */
static inline int nnrt_sgemm_tn_shape_fits(int64_t M, int64_t N) {
    return M <= NNRT_IN_PLACE_MAX_LISTED && N > 32 && nnrt_in_place_fills_lanes(N);
}

int nnrt_sgemm_tn_in_place(int64_t M, int64_t K, int64_t N);
void nnrt_sgemm_tn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* nnrt_sgemm_tn where the caller promises that A is unchanged since this thread's last
 * nnrt_sgemm_nn on it: the list of A's nonzero columns that call made is taken again when
 * A, its rows, columns and stride match, instead of reading A to make it. The compiler calls
 * it for a first layer's weight gradient Xᵀ·dZ whose X·W came earlier in the same entry
 * point, outside the team's step (whose phases may run on other threads); a thread of the
 * team asks for it (the _as form's again) for its block of Xᵀ·dZ when it ran a block of an
 * X·W in the same step (workers.c, team_block_sgemm). */
void nnrt_sgemm_tn_again(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* again: as nnrt_sgemm_tn_again, else as nnrt_sgemm_tn. */
void nnrt_sgemm_tn_as(int in_place, int again, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);

#endif
