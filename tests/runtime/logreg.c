/* logreg.c: a hand-written model for the runtime tests: logistic regression on two inputs,
 * in plain C, behaving as nnc's generated code must (nnrt.h). Elements are float.
 *   input x[2], target y[1]; p = sigmoid(x @ lin.W + lin.b); loss = bce(p, y) */
#include <math.h>

#include "nnrt.h"
#include "test_model.h"

#ifndef LOGREG_DEFAULT_DATA
#define LOGREG_DEFAULT_DATA NULL
#endif

/* Fixed arena: params, their gradients, their momentum buffers. */
enum { W = 0, B = 2, GRAD_W = 3, GRAD_B = 5, VEL_W = 6, VEL_B = 8, FIXED_ELEMS = 9 };
/* Varying arena, per-sample offsets. */
#ifdef LOGREG_HUGE_ARENA /* as if its values took 2^29 elements a sample: see the batch limit */
enum { X = 0, Y = 2, P = 3, LOSS = 4, VARYING_ELEMS = 1 << 29 };
#else
enum { X = 0, Y = 2, P = 3, LOSS = 4, VARYING_ELEMS = 5 };
#endif

static float *at(const nnrt_ctx *ctx, int offset) {
    return (float *)ctx->varying + offset * ctx->batch_cap;
}

static float logit(const nnrt_ctx *ctx, int64_t b) {
    const float *f = ctx->fixed, *x = at(ctx, X) + 2 * b;
    return x[0] * f[W] + x[1] * f[W + 1] + f[B];
}

static void predict(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    for (int64_t b = 0; b < ctx->batch; b++) at(ctx, P)[b] = 1.0f / (1.0f + expf(-logit(ctx, b)));
}

static void forward(nnrt_ctx *ctx) {
    test_trace_forward(ctx);
    predict(ctx);
    for (int64_t b = 0; b < ctx->batch; b++) {
        float z = logit(ctx, b), y = at(ctx, Y)[b];
        /* bce(sigmoid(z), y) = softplus(z) - y*z, in a form that does not overflow */
        at(ctx, LOSS)[b] = fmaxf(z, 0.0f) - y * z + log1pf(expf(-fabsf(z)));
    }
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    float *f = ctx->fixed;
    f[GRAD_W] = f[GRAD_W + 1] = f[GRAD_B] = 0.0f;
    for (int64_t b = 0; b < ctx->batch; b++) {
        float dz = (at(ctx, P)[b] - at(ctx, Y)[b]) / (float)ctx->batch;
        f[GRAD_W] += dz * at(ctx, X)[2 * b];
        f[GRAD_W + 1] += dz * at(ctx, X)[2 * b + 1];
        f[GRAD_B] += dz;
    }
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    test_trace_step(ctx);
    grad(ctx);
    float *f = ctx->fixed;
    static const int params[][3] = {
        {W, GRAD_W, VEL_W}, {W + 1, GRAD_W + 1, VEL_W + 1}, {B, GRAD_B, VEL_B}};
    for (int i = 0; i < 3; i++) {
        float g = f[params[i][1]];
        if (momentum != 0.0) g = f[params[i][2]] = (float)momentum * f[params[i][2]] + g;
        f[params[i][0]] -= (float)lr * g;
    }
}

static const nnrt_tensor params[] = {
    {.name = "lin.W",
     .rank = 2,
     .dims = {2, 1},
     .numel = 2,
     .offset = W,
     .init = NNRT_INIT_GLOROT,
     .grad_offset = GRAD_W,
     .velocity_offset = VEL_W},
    {.name = "lin.b",
     .rank = 1,
     .dims = {1},
     .numel = 1,
     .offset = B,
     .init = NNRT_INIT_ZEROS,
     .grad_offset = GRAD_B,
     .velocity_offset = VEL_B},
};
static const nnrt_tensor inputs[] = {TEST_VECTOR("x", 2, X)};
static const nnrt_tensor targets[] = {TEST_VECTOR("y", 1, Y)};
#ifdef LOGREG_FAR_COLUMNS /* a descriptor whose column map is past what a CSV row can have */
static const nnrt_column_map columns[] = {{.tensor = "x", .first = 0, .last = 1},
                                          {.tensor = "y", .first = INT32_MAX, .last = INT32_MAX}};
#else
static const nnrt_column_map columns[] = {{.tensor = "x", .first = 0, .last = 1},
                                          {.tensor = "y", .first = 2, .last = 2}};
#endif

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
    .name = "logreg",
    .source = "tests/runtime/logreg.c",
    .f64 = 0,
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = VARYING_ELEMS,
    .n_params = 2,
    .params = params,
    .n_inputs = 1,
    .inputs = inputs,
    .n_targets = 1,
    .targets = targets,
    .output = TEST_VECTOR("p", 1, P),
    .loss = TEST_LOSS(LOSS, 1),
    .forward = forward,
    .predict = predict,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.data_kind = "csv",
              .data_path = LOGREG_DEFAULT_DATA,
              .n_columns = 2,
              .columns = columns,
              .optimizer = "sgd",
              .lr = 0.5,
              .momentum = 0.9,
              .batch = 8,
              .epochs = 50,
              .steps = 0,
              .seed = 42,
              .shuffle = 1,
              .validation = 0.0,
              .classification = 1},
};
