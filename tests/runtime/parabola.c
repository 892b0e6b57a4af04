/* parabola.c: a hand-written model without inputs for the runtime tests, in f64: a function
 * to minimise, as the gradient-descent lessons are written.
 *   param x = 2 (const), param v[10] = uniform(-1, 1)
 *   loss = 3*x^2 - 3*x + 4 + sum_i (v[i] - i/10)^2,  minimal (3.25) at x = 0.5, v[i] = i/10 */
#include <math.h>
#include <stdlib.h>

#include "nnrt.h"
#include "test_model.h"

enum { N_V = 10 };
/* Fixed arena: params, gradients, momentum buffers, and the loss (it does not vary). */
enum {
    X = 0,
    V = 1,
    GRAD_X = 11,
    GRAD_V = 12,
    VEL_X = 22,
    VEL_V = 23,
    LOSS = 33,
    FIXED_ELEMS = 34
};

static void forward(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    double *f = ctx->fixed, x = f[X], loss = 3 * x * x - 3 * x + 4;
    for (int i = 0; i < N_V; i++) loss += (f[V + i] - i / 10.0) * (f[V + i] - i / 10.0);
    f[LOSS] = loss;
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    double *f = ctx->fixed;
    f[GRAD_X] = 6 * f[X] - 3;
    for (int i = 0; i < N_V; i++) f[GRAD_V + i] = 2 * (f[V + i] - i / 10.0);
    /* The fault tests: a gradient that overflows while the loss stays finite. */
    const char *inf = getenv("PARABOLA_INF_GRAD");
    if (inf) f[GRAD_V + atoi(inf)] = INFINITY;
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    test_trace_step(ctx);
    grad(ctx);
    double *f = ctx->fixed;
    for (int i = 0; i < 1 + N_V; i++) { /* x and v, and their buffers, are adjacent */
        double g = f[GRAD_X + i];
        if (momentum != 0.0) g = f[VEL_X + i] = momentum * f[VEL_X + i] + g;
        f[X + i] -= lr * g;
    }
}

static const nnrt_tensor params[] = {
    {.name = "x",
     .numel = 1,
     .offset = X,
     .init = NNRT_INIT_CONST,
     .init_a = 2.0,
     .grad_offset = GRAD_X,
     .velocity_offset = VEL_X},
    {.name = "v",
     .rank = 1,
     .dims = {N_V},
     .numel = N_V,
     .offset = V,
     .init = NNRT_INIT_UNIFORM,
     .init_a = -1.0,
     .init_b = 1.0,
     .grad_offset = GRAD_V,
     .velocity_offset = VEL_V},
};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
    .name = "parabola",
    .source = "tests/runtime/parabola.c",
    .f64 = 1,
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = 0,
    .n_params = 2,
    .params = params,
    .loss = TEST_LOSS(LOSS, 0),
    .forward = forward,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.optimizer = "sgd", .lr = 0.05, .momentum = 0.5, .steps = 200, .seed = 7},
};
