/* kinks.c: a hand-written model without inputs for the gradcheck tests, in f64, whose loss
 * has corners where gradcheck starts:
 *   param a = 0, param b[3] = 0
 *   loss = relu(a) + |b[0]| + relu(b[1] + 0.0015) + relu(b[2] + 0.000015)
 * relu(a) has its corner at the initial a: the one-sided slopes are 0 and 1 and grad()
 * says 0, so no difference can confirm it (a kink, skipped). |b[0]| at 0: the central
 * difference is 0, as grad() says. relu(b[1] + 0.0015) has its corner inside the first
 * difference's stencil (+-2e-3) but not at b[1]: a smaller step must confirm the slope 1.
 * relu(b[2] + 0.000015) has its corner inside even the smallest stencil (+-2e-5), but
 * outside its inner points (+-1e-5): it must still be recognised as a kink. */
#include "nnrt.h"
#include "test_model.h"

#define B1_SHIFT 0.0015
#define B2_SHIFT 0.000015

/* Fixed arena: params, gradients, momentum buffers, and the loss (it does not vary). */
enum { A = 0, B = 1, GRAD_A = 4, GRAD_B = 5, VEL_A = 8, VEL_B = 9, LOSS = 12, FIXED_ELEMS = 13 };

static double relu(double v) {
    return v > 0 ? v : 0;
}

static void forward(nnrt_ctx *ctx) {
    test_check_ctx(ctx);
    double *f = ctx->fixed;
    f[LOSS] = relu(f[A]) + (f[B] < 0 ? -f[B] : f[B]) + relu(f[B + 1] + B1_SHIFT) +
              relu(f[B + 2] + B2_SHIFT);
}

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    double *f = ctx->fixed;
    f[GRAD_A] = f[A] > 0; /* relu'(0) = 0 */
    f[GRAD_B] = (f[B] > 0) - (f[B] < 0);
    f[GRAD_B + 1] = f[B + 1] + B1_SHIFT > 0;
    f[GRAD_B + 2] = f[B + 2] + B2_SHIFT > 0;
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    grad(ctx);
    double *f = ctx->fixed;
    for (int i = 0; i < 4; i++) { /* a and b, and their buffers, are adjacent */
        double g = f[GRAD_A + i];
        if (momentum != 0.0) g = f[VEL_A + i] = momentum * f[VEL_A + i] + g;
        f[A + i] -= lr * g;
    }
}

static const nnrt_tensor params[] = {
    {.name = "a",
     .numel = 1,
     .offset = A,
     .init = NNRT_INIT_ZEROS,
     .grad_offset = GRAD_A,
     .velocity_offset = VEL_A},
    {.name = "b",
     .rank = 1,
     .dims = {3},
     .numel = 3,
     .offset = B,
     .init = NNRT_INIT_ZEROS,
     .grad_offset = GRAD_B,
     .velocity_offset = VEL_B},
};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
    .name = "kinks",
    .source = "tests/runtime/kinks.c",
    .f64 = 1,
    .fixed_elems = FIXED_ELEMS,
    .varying_elems = 0,
    .n_params = 2,
    .params = params,
    .loss = TEST_LOSS(LOSS, 0),
    .forward = forward,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.optimizer = "sgd", .lr = 0.01, .steps = 10, .seed = 1},
};
