/* crossing.c: what it costs this machine to hand data from one core to another, the cost
 * that every phase of `--workers`' team step and every HOGWILD! update pays. On some hosts
 * it changes from minute to minute (bench/README.md, "On a Zen 5, and column blocks"), so
 * bench/workers.py runs this beside each round and prints its figures with the round's.
 *
 *   bench_crossing
 *
 * Prints three lines:
 *   round trip R ns (median of 9 runs of 0.05 s)  a cache line bounced between two threads
 *   400 KB handed both ways H us                (W1's weights: 784 x 128 f32) written by
 *                                               one thread, read and touched by the other
 *   W2's first GEMM: W us whole on one core, its halves on two cores at once A / B us:
 *     at most S x                               nothing shared but the CPUs' caches and
 *                                               memory: the most a two-core split of a step
 *                                               made of such GEMMs can gain at this moment
 * Each thread is pinned to its own CPU (the first two the process may run on) where the
 * system allows; with one CPU it says so and measures nothing. Nothing is asserted. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#endif
#include "blas_kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RUNS = 9, BATCH = 100, HANDOFFS = 200, FLOATS = 784 * 128 };
#define RUN_SECONDS 0.05
#define STOP        (-1L)

static _Alignas(64) _Atomic long ping;
static _Alignas(64) _Atomic long pong;
static float *shared;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The first two CPUs the process may run on, read before any thread is pinned: a thread
 * started by a pinned one inherits its single CPU. */
static int cpus[2];

static int find_two_cpus(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
    int found = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
        if (CPU_ISSET(cpu, &allowed)) cpus[found++] = cpu;
    return found == 2;
}

/* Pins the calling thread to cpus[which]. */
static void pin(int which) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[which], &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
}

/* The other thread of a run of round trips: answers each ping with the same pong, until
 * the ping is STOP. */
static void *answer(void *arg) {
    (void)arg;
    pin(1);
    for (long seen = atomic_load(&pong);;) {
        long i = atomic_load_explicit(&ping, memory_order_acquire);
        if (i == STOP) return NULL;
        if (i == seen) continue;
        atomic_store_explicit(&pong, i, memory_order_release);
        seen = i;
    }
}

/* The other thread of the handoffs: on turn 2r-1 reads the whole buffer, touches every line
 * (so that the writer must take the lines back), and answers with turn 2r. */
static void *take_and_touch(void *arg) {
    (void)arg;
    pin(1);
    volatile float sink = 0;
    for (long r = 1; r <= HANDOFFS; r++) {
        while (atomic_load_explicit(&pong, memory_order_acquire) != 2 * r - 1) continue;
        float sum = 0;
        for (int i = 0; i < FLOATS; i++) sum += shared[i];
        for (int i = 0; i < FLOATS; i += 16) shared[i] += 1;
        sink = sink + sum;
        atomic_store_explicit(&pong, 2 * r, memory_order_release);
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Round trips for RUN_SECONDS at least (whole batches of BATCH): ns each. A busy machine
 * that takes a thread off its CPU makes the run's trips fewer, not the run longer. */
static double one_run(long *next) {
    pthread_t other;
    atomic_store(&ping, *next - 1);
    atomic_store(&pong, *next - 1);
    if (pthread_create(&other, NULL, answer, NULL) != 0) return -1;
    double start = now(), elapsed = 0;
    long done = 0;
    while (elapsed < RUN_SECONDS) {
        for (int b = 0; b < BATCH; b++, done++, (*next)++) {
            atomic_store_explicit(&ping, *next, memory_order_release);
            while (atomic_load_explicit(&pong, memory_order_acquire) != *next) continue;
        }
        elapsed = now() - start;
    }
    atomic_store_explicit(&ping, STOP, memory_order_release);
    pthread_join(other, NULL);
    return elapsed / (double)done * 1e9;
}

static double round_trip_ns(void) {
    double runs[RUNS];
    long next = 1;
    for (int run = 0; run < RUNS; run++) runs[run] = one_run(&next);
    qsort(runs, RUNS, sizeof *runs, by_value);
    return runs[RUNS / 2];
}

static double handoff_us(void) {
    shared = calloc(FLOATS, sizeof *shared);
    if (!shared) return -1;
    atomic_store(&pong, 0);
    pthread_t other;
    if (pthread_create(&other, NULL, take_and_touch, NULL) != 0) return -1;
    double start = now();
    for (long r = 1; r <= HANDOFFS; r++) {
        for (int i = 0; i < FLOATS; i++) shared[i] += 1;
        atomic_store_explicit(&pong, 2 * r - 1, memory_order_release);
        while (atomic_load_explicit(&pong, memory_order_acquire) != 2 * r) continue;
    }
    double us = (now() - start) / HANDOFFS * 1e6;
    pthread_join(other, NULL);
    free(shared);
    return us;
}

/* ---- two cores at once ----
 * W2's first GEMM, [128, 784]·[784, 512] in f32, cut by columns as the team's step cuts it
 * (workers.c), each thread with inputs, weights and output of its own. Each call takes the
 * next of WEIGHTS copies of the weights, so that they come from beyond the core's L2 as in a
 * training step, whose other weights and activations pass through the caches between two
 * calls of it. On a Zen 5 host two halves at once, their weights in the same rows, took
 * 15-18% longer than one alone (a loop of FMAs on registers did not), so a step of GEMMs
 * split between the two cores gains less than 2x whatever the split does. */
enum { GEMM_M = 128, GEMM_K = 784, GEMM_N = 512, GEMM_CALLS = 40, WEIGHTS = 4 };

typedef struct gemm_half {
    int cpu;
    float *x, *w[WEIGHTS], *z;
    pthread_barrier_t *start;
    double us;
} gemm_half;

static void gemm_on(const float *x, const float *w, float *z, int cols) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, GEMM_M, cols, GEMM_K, 1, x, GEMM_K, w,
                cols, 0, z, cols);
}

/* z = x·w (x [GEMM_M, GEMM_K], w [GEMM_K, cols], z [GEMM_M, cols]) GEMM_CALLS times after a
 * warm-up, each call on the next copy of w: us a call. */
static double time_gemm(const gemm_half *h, int cols) {
    for (int warm = 0; warm < WEIGHTS; warm++) gemm_on(h->x, h->w[warm], h->z, cols);
    double start = now();
    for (int call = 0; call < GEMM_CALLS; call++) gemm_on(h->x, h->w[call % WEIGHTS], h->z, cols);
    return (now() - start) / GEMM_CALLS * 1e6;
}

static void *run_half(void *arg) {
    gemm_half *h = arg;
    pin(h->cpu);
    pthread_barrier_wait(h->start);
    h->us = time_gemm(h, GEMM_N / 2);
    return NULL;
}

static float *filled(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = (float)(i % 13) * 0.01f;
    return p;
}

static bool allocated(const gemm_half *h) {
    bool all = h->x && h->z;
    for (int c = 0; c < WEIGHTS; c++) all = all && h->w[c];
    return all;
}

static void release(gemm_half *h) {
    free(h->x);
    free(h->z);
    for (int c = 0; c < WEIGHTS; c++) free(h->w[c]);
}

/* Prints the whole GEMM's time on one core and its halves' on two cores at once. */
static void two_at_once(void) {
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    gemm_half half[2], whole = {0};
    whole.x = filled((size_t)GEMM_M * GEMM_K), whole.z = filled((size_t)GEMM_M * GEMM_N);
    for (int c = 0; c < WEIGHTS; c++) whole.w[c] = filled((size_t)GEMM_K * GEMM_N);
    for (int k = 0; k < 2; k++) {
        half[k] = (gemm_half){.cpu = k, .start = &start};
        half[k].x = filled((size_t)GEMM_M * GEMM_K), half[k].z = filled((size_t)GEMM_M * GEMM_N);
        for (int c = 0; c < WEIGHTS; c++) half[k].w[c] = filled((size_t)GEMM_K * GEMM_N / 2);
    }
    pthread_t other;
    if (allocated(&whole) && allocated(&half[0]) && allocated(&half[1]) &&
        pthread_create(&other, NULL, run_half, &half[1]) == 0) {
        double one = time_gemm(&whole, GEMM_N); /* the other thread waits at the barrier */
        run_half(&half[0]);
        pthread_join(other, NULL);
        double slower = half[0].us > half[1].us ? half[0].us : half[1].us;
        printf("W2's first GEMM: %.0f us whole on one core, its halves on two cores at once "
               "%.0f / %.0f us: at most %.2fx\n",
               one, half[0].us, half[1].us, one / slower);
    }
    release(&whole), release(&half[0]), release(&half[1]);
    pthread_barrier_destroy(&start);
}

int main(int argc, char **argv) {
    if (argc != 1) {
        fprintf(stderr, "usage: bench_crossing\n");
        return 2;
    }
    if (!find_two_cpus()) {
        printf("one CPU: nothing crosses\n"); /* and two spinning threads would take turns */
        return 0;
    }
    rt_choose_blas_kernels(argv); /* a training executable's kernels (may run us again) */
    rt_blas_one_thread();
    pin(0);
    printf("round trip %.0f ns (median of %d runs of %.2f s)\n", round_trip_ns(), RUNS,
           RUN_SECONDS);
    printf("400 KB handed both ways %.1f us\n", handoff_us());
    two_at_once();
    return 0;
}
