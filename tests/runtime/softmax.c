/* softmax.c: a hand-written model for the runtime tests: softmax regression 4 -> 3 in f64,
 * with its matrix products in OpenBLAS as nnc's generated code does them (nnrt.h).
 *   input x[4], target y[3]; p = softmax(x @ fc.W + fc.b); loss = crossentropy(p, y)
 * Built twice: for CSV data (y from one class-index column, so one-hot), and with
 * SOFTMAX_IDX for IDX data, where x is a 2x2 image. */
#include <cblas.h>
#include <math.h>

#include "nnrt.h"
#include "test_model.h"

enum { N_IN = 4, N_OUT = 3 };
/* Fixed arena: params, their gradients, their momentum buffers. */
enum { W = 0, B = 12, GRAD_W = 15, GRAD_B = 27, VEL_W = 30, VEL_B = 42, FIXED_ELEMS = 45 };
/* Varying arena, per-sample offsets; DZ is backward scratch. */
enum { X = 0, Y = 4, P = 7, LOSS = 10, DZ = 11, VARYING_ELEMS = 14 };

static double *at(const nnrt_ctx *ctx, int offset) {
    return (double *)ctx->varying + offset * ctx->batch_cap;
}

/* P = softmax(X W + b), and the log of each row's normaliser into LOSS for forward. */
static void logits_to_probs(nnrt_ctx *ctx, int with_loss) {
    const double *f = ctx->fixed;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ctx->batch, N_OUT, N_IN, 1.0,
                at(ctx, X), N_IN, f + W, N_OUT, 0.0, at(ctx, P), N_OUT);
    for (int64_t b = 0; b < ctx->batch; b++) {
        double *z = at(ctx, P) + N_OUT * b, *y = at(ctx, Y) + N_OUT * b;
        double top = -INFINITY, sum = 0.0, target_logit = 0.0;
        for (int j = 0; j < N_OUT; j++) {
            z[j] += f[B + j];
            top = fmax(top, z[j]);
        }
        for (int j = 0; j < N_OUT; j++) sum += exp(z[j] - top);
        if (with_loss)
            for (int j = 0; j < N_OUT; j++) target_logit += y[j] * z[j];
        double log_norm = top + log(sum);
        for (int j = 0; j < N_OUT; j++) z[j] = exp(z[j] - log_norm);
        /* crossentropy with a one-hot y: log(sum exp z) - z[class] */
        if (with_loss) at(ctx, LOSS)[b] = log_norm - target_logit;
    }
}

static void predict(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    logits_to_probs(ctx, 0);
}

static void forward(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    logits_to_probs(ctx, 1);
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    double *f = ctx->fixed, *dz = at(ctx, DZ);
    for (int j = 0; j < N_OUT; j++) f[GRAD_B + j] = 0.0;
    for (int64_t b = 0; b < ctx->batch; b++)
        for (int j = 0; j < N_OUT; j++) {
            int64_t k = N_OUT * b + j;
            dz[k] = (at(ctx, P)[k] - at(ctx, Y)[k]) / (double)ctx->batch;
            f[GRAD_B + j] += dz[k];
        }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N_IN, N_OUT, (int)ctx->batch, 1.0,
                at(ctx, X), N_IN, dz, N_OUT, 0.0, f + GRAD_W, N_OUT);
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    test_trace_step(ctx);
    grad(ctx);
    double *f = ctx->fixed;
    for (int i = 0; i < N_IN * N_OUT + N_OUT; i++) {
        /* W, b, their gradients and velocities are laid out alike, b right after W */
        double g = f[GRAD_W + i];
        if (momentum != 0.0) g = f[VEL_W + i] = momentum * f[VEL_W + i] + g;
        f[W + i] -= lr * g;
    }
}

static const nnrt_tensor params[] = {
    {.name = "fc.W",
     .rank = 2,
     .dims = {N_IN, N_OUT},
     .numel = N_IN * N_OUT,
     .offset = W,
     .init = NNRT_INIT_HE,
     .grad_offset = GRAD_W,
     .velocity_offset = VEL_W},
    {.name = "fc.b",
     .rank = 1,
     .dims = {N_OUT},
     .numel = N_OUT,
     .offset = B,
     .init = NNRT_INIT_UNIFORM,
     .init_a = -0.1,
     .init_b = 0.1,
     .grad_offset = GRAD_B,
     .velocity_offset = VEL_B},
};
#ifdef SOFTMAX_IDX
static const nnrt_tensor inputs[] = {{.name = "x",
                                      .rank = 2,
                                      .dims = {2, 2},
                                      .numel = N_IN,
                                      .offset = X,
                                      .varying = 1,
                                      .grad_offset = -1,
                                      .velocity_offset = -1}};
#else
static const nnrt_tensor inputs[] = {TEST_VECTOR("x", N_IN, X)};
static const nnrt_column_map columns[] = {{.tensor = "y", .first = 4, .last = 4},
                                          {.tensor = "x", .first = 0, .last = 3}};
#endif
static const nnrt_tensor targets[] = {TEST_VECTOR("y", N_OUT, Y)};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
#ifdef SOFTMAX_IDX
    .name = "softmax_idx",
#else
    .name = "softmax",
#endif
    .source = "tests/runtime/softmax.c",
    .f64 = 1,
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = VARYING_ELEMS,
    .n_params = 2,
    .params = params,
    .n_inputs = 1,
    .inputs = inputs,
    .n_targets = 1,
    .targets = targets,
    .output = TEST_VECTOR("p", N_OUT, P),
    .loss = TEST_LOSS(LOSS, 1),
    .forward = forward,
    .predict = predict,
    .grad = grad,
    .sgd_step = sgd_step,
#ifdef SOFTMAX_IDX
    .train = {.data_kind = "idx",
              .optimizer = "sgd",
              .lr = 0.5,
              .momentum = 0.0,
              .batch = 16,
              .epochs = 40,
              .seed = 1,
              .shuffle = 1,
              .classification = 1},
#else
    .train = {.data_kind = "csv",
              .n_columns = 2,
              .columns = columns,
              .optimizer = "sgd",
              .lr = 0.1,
              .momentum = 0.9,
              .batch = 10,
              .epochs = 30,
              .seed = 1,
              .shuffle = 1,
              .validation = 0.0,
              .classification = 1},
#endif
};
