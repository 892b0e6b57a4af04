/* crossing.c: what it costs this machine to hand data from one core to another, the cost
 * that every phase of `--workers`' team step and every HOGWILD! update pays. On some hosts
 * it changes from minute to minute (bench/README.md, "On a Zen 5, and column blocks"), so
 * bench/workers.py runs this beside each round and prints its figures with the round's.
 *
 *   bench_crossing
 *
 * Prints two lines:
 *   round trip R ns (median of 9 runs of 0.05 s)  a cache line bounced between two threads
 *   400 KB handed both ways H us                (W1's weights: 784 x 128 f32) written by
 *                                               one thread, read and touched by the other
 * Each thread is pinned to its own CPU (the first two the process may run on) where the
 * system allows; with one CPU it says so and measures nothing. Nothing is asserted. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#endif
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

int main(int argc, char **argv) {
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: bench_crossing\n");
        return 2;
    }
    if (!find_two_cpus()) {
        printf("one CPU: nothing crosses\n"); /* and two spinning threads would take turns */
        return 0;
    }
    pin(0);
    printf("round trip %.0f ns (median of %d runs of %.2f s)\n", round_trip_ns(), RUNS,
           RUN_SECONDS);
    printf("400 KB handed both ways %.1f us\n", handoff_us());
    return 0;
}
