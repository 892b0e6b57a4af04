/* mlp.c: a hand-written model for the gradcheck tests: a small relu network in f64.
 *   input x[3], target y[2] (a class index, one-hot)
 *   z = x @ W1 + b1, h = relu(z), o = h @ W2 + b2, loss = 0.5 * sum_k (o_k - y_k)^2
 * Built three ways:
 *   (default)      grad() is right.
 *   MLP_WRONG      grad() of b1 is 1.5 times the derivative: gradcheck must fail b1 alone.
 *   MLP_SURROGATE  relu's backward is the identity (a straight-through estimator), so the
 *                  gradients of W1 and b1 are not derivatives; the descriptor marks them
 *                  surrogate, and gradcheck must show them without failing.
 * The fault tests: with MLP_DEAD_UNIT_ABOVE_LR=X, a step at a rate above X sends b1[0] to
 * -inf, a hidden unit that dies for good: relu hides it, so the loss stays finite. */
#include <math.h>
#include <stdlib.h>

#include "nnrt.h"
#include "test_model.h"

#ifndef MLP_DEFAULT_DATA
#define MLP_DEFAULT_DATA NULL
#endif
#ifdef MLP_SURROGATE
#define SURROGATE 1
#else
#define SURROGATE 0
#endif

enum { N_IN = 3, N_HID = 4, N_OUT = 2 };
/* Fixed arena: the params back to back, then their gradients and momentum buffers alike. */
enum {
    W1 = 0,
    B1 = W1 + N_IN * N_HID,
    W2 = B1 + N_HID,
    B2 = W2 + N_HID * N_OUT,
    N_PARAM_ELEMS = B2 + N_OUT,
    GRAD = N_PARAM_ELEMS,
    VEL = 2 * N_PARAM_ELEMS,
    FIXED_ELEMS = 3 * N_PARAM_ELEMS
};
/* Varying arena, per-sample offsets. */
enum { X = 0, Y = 3, Z = 5, H = 9, O = 13, LOSS = 15, VARYING_ELEMS = 16 };

static double *at(const nnrt_ctx *ctx, int offset, int64_t b, int width) {
    return (double *)ctx->varying + offset * ctx->batch_cap + b * width;
}

static void predict(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    const double *f = ctx->fixed;
    for (int64_t b = 0; b < ctx->batch; b++) {
        double *x = at(ctx, X, b, N_IN), *z = at(ctx, Z, b, N_HID), *h = at(ctx, H, b, N_HID);
        double *o = at(ctx, O, b, N_OUT);
        for (int j = 0; j < N_HID; j++) {
            z[j] = f[B1 + j];
            for (int i = 0; i < N_IN; i++) z[j] += x[i] * f[W1 + i * N_HID + j];
            h[j] = z[j] > 0 ? z[j] : 0;
        }
        for (int k = 0; k < N_OUT; k++) {
            o[k] = f[B2 + k];
            for (int j = 0; j < N_HID; j++) o[k] += h[j] * f[W2 + j * N_OUT + k];
        }
    }
}

static void forward(nnrt_ctx *ctx) {
    predict(ctx);
    for (int64_t b = 0; b < ctx->batch; b++) {
        const double *o = at(ctx, O, b, N_OUT), *y = at(ctx, Y, b, N_OUT);
        double loss = 0;
        for (int k = 0; k < N_OUT; k++) loss += 0.5 * (o[k] - y[k]) * (o[k] - y[k]);
        *at(ctx, LOSS, b, 1) = loss;
    }
}

/* One sample's contribution to the gradients of the batch mean. */
static void backward_sample(const nnrt_ctx *ctx, int64_t b, double *g) {
    const double *f = ctx->fixed, *x = at(ctx, X, b, N_IN), *z = at(ctx, Z, b, N_HID);
    const double *h = at(ctx, H, b, N_HID), *o = at(ctx, O, b, N_OUT), *y = at(ctx, Y, b, N_OUT);
    double d_o[N_OUT];
    for (int k = 0; k < N_OUT; k++) {
        d_o[k] = (o[k] - y[k]) / (double)ctx->batch;
        g[B2 + k] += d_o[k];
        for (int j = 0; j < N_HID; j++) g[W2 + j * N_OUT + k] += h[j] * d_o[k];
    }
    for (int j = 0; j < N_HID; j++) {
        double d_h = 0;
        for (int k = 0; k < N_OUT; k++) d_h += d_o[k] * f[W2 + j * N_OUT + k];
        double d_z = SURROGATE || z[j] > 0 ? d_h : 0; /* relu'(0) = 0 */
        g[B1 + j] += d_z;
        for (int i = 0; i < N_IN; i++) g[W1 + i * N_HID + j] += x[i] * d_z;
    }
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    double *g = (double *)ctx->fixed + GRAD;
    for (int i = 0; i < N_PARAM_ELEMS; i++) g[i] = 0;
    for (int64_t b = 0; b < ctx->batch; b++) backward_sample(ctx, b, g);
#ifdef MLP_WRONG
    for (int j = 0; j < N_HID; j++) g[B1 + j] *= 1.5;
#endif
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    test_trace_step(ctx);
    grad(ctx);
    double *f = ctx->fixed;
    for (int i = 0; i < N_PARAM_ELEMS; i++) {
        double g = f[GRAD + i];
        if (momentum != 0.0) g = f[VEL + i] = momentum * f[VEL + i] + g;
        f[i] -= lr * g;
    }
    const char *dead = getenv("MLP_DEAD_UNIT_ABOVE_LR");
    if (dead && lr > atof(dead)) f[B1] = -INFINITY;
}

static const nnrt_tensor params[] = {
    {.name = "W1",
     .rank = 2,
     .dims = {N_IN, N_HID},
     .numel = N_IN * N_HID,
     .offset = W1,
     .init = NNRT_INIT_GLOROT,
     .grad_offset = GRAD + W1,
     .velocity_offset = VEL + W1,
     .surrogate = SURROGATE},
    {.name = "b1",
     .rank = 1,
     .dims = {N_HID},
     .numel = N_HID,
     .offset = B1,
     .init = NNRT_INIT_ZEROS,
     .grad_offset = GRAD + B1,
     .velocity_offset = VEL + B1,
     .surrogate = SURROGATE},
    {.name = "W2",
     .rank = 2,
     .dims = {N_HID, N_OUT},
     .numel = N_HID * N_OUT,
     .offset = W2,
     .init = NNRT_INIT_GLOROT,
     .grad_offset = GRAD + W2,
     .velocity_offset = VEL + W2},
    {.name = "b2",
     .rank = 1,
     .dims = {N_OUT},
     .numel = N_OUT,
     .offset = B2,
     .init = NNRT_INIT_ZEROS,
     .grad_offset = GRAD + B2,
     .velocity_offset = VEL + B2},
};
static const nnrt_tensor inputs[] = {TEST_VECTOR("x", N_IN, X)};
static const nnrt_tensor targets[] = {TEST_VECTOR("y", N_OUT, Y)};
static const nnrt_column_map columns[] = {{.tensor = "x", .first = 0, .last = 2},
                                          {.tensor = "y", .first = 3, .last = 3}};
/* Settings beyond the built-in ones, as nnc emits them for
 * `optimizer = adam(lr = 0.1, beta1 = 0.8)`, `l2 = "W1=0.001"`, `schedule = cosine(warmup = 2)`. */
static const nnrt_setting settings[] = {{.name = "optimizer", .value = "adam"},
                                        {.name = "beta1", .value = "0.8"},
                                        {.name = "l2", .value = "W1=0.001"},
                                        {.name = "schedule", .value = "cosine"},
                                        {.name = "warmup", .value = "2"}};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
#if defined MLP_WRONG
    .name = "mlp_wrong",
#elif defined MLP_SURROGATE
    .name = "mlp_surrogate",
#else
    .name = "mlp",
#endif
    .source = "tests/runtime/mlp.c",
    .f64 = 1,
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = VARYING_ELEMS,
    .n_params = 4,
    .params = params,
    .n_inputs = 1,
    .inputs = inputs,
    .n_targets = 1,
    .targets = targets,
    .output = TEST_VECTOR("o", N_OUT, O),
    .loss = TEST_LOSS(LOSS, 1),
    .forward = forward,
    .predict = predict,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.data_kind = "csv",
              .data_path = MLP_DEFAULT_DATA,
              .n_columns = 2,
              .columns = columns,
              .optimizer = "sgd",
              .lr = 0.1,
              .momentum = 0.9,
              .batch = 8,
              .epochs = 20,
              .seed = 3,
              .shuffle = 1,
              .classification = 1,
              .n_settings = sizeof settings / sizeof settings[0],
              .settings = settings},
};
