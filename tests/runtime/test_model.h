/* test_model.h: checks shared by the hand-written test models. Each model verifies the
 * calling convention of nnrt.h on every call (batch within 1..batch_cap, batch_cap never
 * changing within an arena, 64-byte aligned zeroed arenas) and, when NNRT_TEST_TRACE is set,
 * reports each training step's batch on stderr as "step BATCH/CAP", so the tests can check
 * how the runtime cut the data into batches; NNRT_TEST_TRACE_FORWARD reports each forward pass
 * (eval's and predict --loss's batches) as "forward BATCH/CAP". NNRT_TEST_SIGINT_AT_STEP=K raises
 * SIGINT during training step K (from 1), as a Ctrl-C at that moment would;
 * NNRT_TEST_STEP_SLEEP_MS=N makes every training step last at least N milliseconds (epochs long
 * enough for progress lines). */
#ifndef NNRT_TEST_MODEL_H
#define NNRT_TEST_MODEL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nnrt.h"

/* A per-sample vector of N elements that is read or written but never trained: an input, a
 * target, an output. */
#define TEST_VECTOR(NAME, N, OFFSET)                                                            \
    {.name = (NAME), .rank = 1, .dims = {(N)}, .numel = (N), .offset = (OFFSET), .varying = 1, \
     .grad_offset = -1, .velocity_offset = -1}

/* The loss: a scalar, one per sample when VARYING (else the model's only one). */
#define TEST_LOSS(OFFSET, VARYING)                                                             \
    {.name = "loss", .numel = 1, .offset = (OFFSET), .varying = (VARYING), .grad_offset = -1,  \
     .velocity_offset = -1}

static inline void test_check_ctx(const nnrt_ctx *ctx) {
    if (ctx->batch < 1 || ctx->batch > ctx->batch_cap) {
        fprintf(stderr, "test model: batch %lld outside 1..%lld\n", (long long)ctx->batch,
                (long long)ctx->batch_cap);
        abort();
    }
    if ((uintptr_t)ctx->fixed % 64 != 0 || (uintptr_t)ctx->varying % 64 != 0) {
        fprintf(stderr, "test model: arena not 64-byte aligned\n");
        abort();
    }
}

static inline void test_trace_step(const nnrt_ctx *ctx) {
    static int trace = -1;
    static long long steps, sigint_at, sleep_ms;
    if (trace < 0) {
        trace = getenv("NNRT_TEST_TRACE") != NULL;
        const char *at = getenv("NNRT_TEST_SIGINT_AT_STEP"),
                   *ms = getenv("NNRT_TEST_STEP_SLEEP_MS");
        sigint_at = at ? atoll(at) : 0;
        sleep_ms = ms ? atoll(ms) : 0;
    }
    if (trace)
        fprintf(stderr, "step %lld/%lld\n", (long long)ctx->batch, (long long)ctx->batch_cap);
    if (++steps == sigint_at) raise(SIGINT);
    if (sleep_ms > 0) {
        struct timespec pause = {(time_t)(sleep_ms / 1000), (long)(sleep_ms % 1000) * 1000000L};
        while (nanosleep(&pause, &pause) != 0) continue; /* the rest of it, after a signal */
    }
}

static inline void test_trace_forward(const nnrt_ctx *ctx) {
    static int trace = -1;
    if (trace < 0) trace = getenv("NNRT_TEST_TRACE_FORWARD") != NULL;
    if (trace)
        fprintf(stderr, "forward %lld/%lld\n", (long long)ctx->batch, (long long)ctx->batch_cap);
}

#endif
