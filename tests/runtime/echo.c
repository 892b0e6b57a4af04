/* echo.c: a hand-written model for the runtime tests that shows what the runtime gathers.
 * input x[3] (an IDX image of 1x3 pixels, or CSV columns 0..2), target y[2] (one-hot from a
 * class index: an IDX label or CSV column 3); the output is x itself, the loss 0, and no param
 * ever changes. With NNRT_TEST_TRACE set, every training step prints each row of its batch
 * on stderr, "row X0 X1 X2 | Y0 Y1" with the values as stored in the arena (%.17g), so the
 * tests see the exact values a batch holds: the conversion of IDX bytes, the order of the
 * rows, the last partial batch. Built in f32 and, with ECHO_F64, in f64; with ECHO_WIDTH N,
 * x has N values (echo_wide: rows long enough for the gather's vector loops and their
 * tails). */
#include <stdio.h>
#include <stdlib.h>

#include "nnrt.h"
#include "test_model.h"

#ifdef ECHO_F64
typedef double elem;
#else
typedef float elem;
#endif

#ifndef ECHO_WIDTH
#define ECHO_WIDTH 3
#endif
enum { N_IN = ECHO_WIDTH, N_OUT = 2 };
/* Fixed arena: the one param (unused by the loss) and its gradient. */
enum { BIAS = 0, GRAD_BIAS = 1, FIXED_ELEMS = 2 };
/* Varying arena, per-sample offsets. */
enum { X = 0, Y = N_IN, OUT = N_IN + N_OUT, LOSS = 2 * N_IN + N_OUT, VARYING_ELEMS = LOSS + 1 };

static elem *at(const nnrt_ctx *ctx, int offset) {
    return (elem *)ctx->varying + offset * ctx->batch_cap;
}

static void predict(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    for (int64_t i = 0; i < ctx->batch * N_IN; i++) at(ctx, OUT)[i] = at(ctx, X)[i];
}

static void forward(nnrt_ctx *ctx) {
    predict(ctx);
    for (int64_t b = 0; b < ctx->batch; b++) at(ctx, LOSS)[b] = 0;
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    ((elem *)ctx->fixed)[GRAD_BIAS] = 0;
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    (void)lr, (void)momentum;
    if (getenv("NNRT_TEST_TRACE"))
        for (int64_t b = 0; b < ctx->batch; b++) {
            const elem *x = at(ctx, X) + N_IN * b, *y = at(ctx, Y) + N_OUT * b;
            fputs("row", stderr);
            for (int i = 0; i < N_IN; i++) fprintf(stderr, " %.17g", (double)x[i]);
            fprintf(stderr, " | %.17g %.17g\n", (double)y[0], (double)y[1]);
        }
    test_trace_step(ctx);
    grad(ctx);
}

static const nnrt_tensor params[] = {{.name = "bias",
                                      .numel = 1,
                                      .offset = BIAS,
                                      .init = NNRT_INIT_ZEROS,
                                      .grad_offset = GRAD_BIAS,
                                      .velocity_offset = -1}};
static const nnrt_tensor inputs[] = {{.name = "x",
                                      .rank = 2,
                                      .dims = {1, N_IN},
                                      .numel = N_IN,
                                      .offset = X,
                                      .varying = 1,
                                      .grad_offset = -1,
                                      .velocity_offset = -1}};
static const nnrt_tensor targets[] = {TEST_VECTOR("y", N_OUT, Y)};
static const nnrt_column_map columns[] = {{.tensor = "x", .first = 0, .last = N_IN - 1},
                                          {.tensor = "y", .first = N_IN, .last = N_IN}};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
#if defined(ECHO_F64) && ECHO_WIDTH != 3
    .name = "echo_wide64",
    .f64 = 1,
#elif defined(ECHO_F64)
    .name = "echo64",
    .f64 = 1,
#elif ECHO_WIDTH != 3
    .name = "echo_wide",
#else
    .name = "echo",
#endif
    .source = "tests/runtime/echo.c",
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = VARYING_ELEMS,
    .n_params = 1,
    .params = params,
    .n_inputs = 1,
    .inputs = inputs,
    .n_targets = 1,
    .targets = targets,
    .output = {.name = "out",
               .rank = 2,
               .dims = {1, N_IN},
               .numel = N_IN,
               .offset = OUT,
               .varying = 1,
               .grad_offset = -1,
               .velocity_offset = -1},
    .loss = TEST_LOSS(LOSS, 1),
    .forward = forward,
    .predict = predict,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.data_kind = "csv", /* IDX images through --data IMAGES,LABELS */
              .n_columns = 2,
              .columns = columns,
              .optimizer = "sgd",
              .lr = 0.1,
              .batch = 4,
              .epochs = 1,
              .seed = 1,
              .shuffle = 0},
};
