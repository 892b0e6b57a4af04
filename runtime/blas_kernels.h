/* blas_kernels.h: make OpenBLAS use the kernels the CPU can run (blas_kernels.c). */
#ifndef NNRT_BLAS_KERNELS_H
#define NNRT_BLAS_KERNELS_H

#include <stdbool.h>

/* The OpenBLAS core type to ask for when OpenBLAS loaded the kernels named in_use on a CPU
 * with the given features, or NULL to keep them. */
const char *rt_blas_better_kernels(const char *in_use, bool avx512, bool avx2_fma);

/* Called first thing in main(): when OpenBLAS fell back to kernels far below the CPU and
 * OPENBLAS_CORETYPE is unset, sets it and executes the program again with the same argv
 * (it does not return then). Otherwise returns and changes nothing. */
void rt_choose_blas_kernels(char **argv);

/* OpenBLAS on the calling thread only: its pool of threads, started at load, stopped. Calls
 * from several threads at once (--workers, --hogwild) stay safe. */
void rt_blas_one_thread(void);

#endif
