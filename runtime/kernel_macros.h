/* kernel_macros.h: what the register-blocked kernels (packed_gemm.c, in_place_gemm.c) ask of
 * the compiler. A tile's sums stay in registers only once its loops over rows are unrolled
 * completely and the tile is inlined into each case of its row count. */
#ifndef NNRT_KERNEL_MACROS_H
#define NNRT_KERNEL_MACROS_H

#define ALWAYS_INLINE __attribute__((always_inline)) inline
/* Each loop over a tile's rows unrolled completely (clang does not read GCC's spelling). */
#if defined(__clang__)
#define UNROLL_ROWS _Pragma("unroll")
#else
#define UNROLL_ROWS _Pragma("GCC unroll 16")
#endif

#endif
