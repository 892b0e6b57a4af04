/* blas_kernels.c: make OpenBLAS use the kernels the CPU can run.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels once, when the library is
 * loaded, from the CPU's vendor, family and model. A CPU newer than the library is not in
 * its table: OpenBLAS 0.3.21 (Debian 12) takes an Intel Sapphire Rapids for an unknown
 * model and falls back to its Prescott kernels (SSE3), which run a GEMM at less than half
 * the speed of its SkylakeX (AVX-512) kernels on the same core; it gives AMD's Zen 4 and Zen 5
 * its AVX2 kernels, at 0.6 of the SkylakeX ones' speed on a Zen 5. The only way to choose is
 * the environment variable OPENBLAS_CORETYPE, read at load time, before main() runs; so
 * when such a fallback is in use on a CPU that has AVX2 or AVX-512, the executable sets the
 * variable and executes itself again, once (docs/runtime.md, "BLAS kernels"). A variable
 * the user set is never overridden, and nothing happens where OpenBLAS knows the CPU. */
#ifndef _POSIX_C_SOURCE /* setenv, execv; the benchmarks compile this file too */
#define _POSIX_C_SOURCE 200809L
#endif
#include "blas_kernels.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);
/* Not part of OpenBLAS's API, but exported by its pthread builds (Debian's default); weak, so
 * that a build without it (OpenMP) still links, and then keeps its pool. */
void blas_thread_shutdown_(void) __attribute__((weak));

/* The kernels OpenBLAS 0.3.21 settles for on CPUs it does not know: Prescott for an
 * x86-64 it cannot place at all, and its AVX2 kernels (Haswell, Zen) for AMD's Zen 4 and
 * Zen 5, which have AVX-512. */
static bool below_cpu(const char *in_use, bool avx512) {
    if (strcasecmp(in_use, "prescott") == 0) return true;
    return avx512 && (strcasecmp(in_use, "haswell") == 0 || strcasecmp(in_use, "zen") == 0);
}

const char *rt_blas_better_kernels(const char *in_use, bool avx512, bool avx2_fma) {
    if (in_use == NULL || !below_cpu(in_use, avx512)) return NULL;
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return NULL;
}

/* AVX-512 as SkylakeX's kernels use it (F, BW, DQ, VL), and AVX2 with FMA as Haswell's.
 * GCC and clang report a feature only when the OS also saves its registers (XCR0). */
static void cpu_features(bool *avx512, bool *avx2_fma) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    *avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    *avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    *avx512 = *avx2_fma = false;
#endif
}

void rt_choose_blas_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") != NULL || argv == NULL || argv[0] == NULL) return;
    bool avx512, avx2_fma;
    cpu_features(&avx512, &avx2_fma);
    const char *better = rt_blas_better_kernels(openblas_get_corename(), avx512, avx2_fma);
    if (better == NULL) return;
    /* Set even if the exec fails, so that a child process does not try again. */
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0) return;
    /* Loaded again anyway, OpenBLAS can load without its pool of threads, which a later
     * openblas_set_num_threads(N > 1) starts. A pool started and then stopped
     * (rt_blas_one_thread) leaves each call's locks dearer: pthread_mutex_lock and unlock
     * took 4.6% of a W3 epoch that way, 1.7% without a pool. A value the user set stays. */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    execv("/proc/self/exe", argv);
    /* No /proc (a chroot, say): carry on with the kernels loaded. */
}

/* OpenBLAS starts its pool of threads (one per core, less the caller) when it is loaded,
 * whatever openblas_set_num_threads says later; an idle pool thread spins in sched_yield for a
 * while after each call, a few percent of another core that a one-thread run never uses (and
 * that a second run, or a rank under mpirun, would). The pool is stopped instead: with one
 * thread asked for, no call hands work to it, and OpenBLAS starts it again by itself should
 * openblas_set_num_threads ask for more threads later. */
void rt_blas_one_thread(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}
