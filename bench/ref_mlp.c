/* ref_mlp.c: the benchmark MLPs written by hand in C over OpenBLAS (and the runtime's kernel
 * for the forward products and the first layer's weight gradient, nnrt_sgemm_nn and
 * nnrt_sgemm_tn_again, as the generated code calls them), behind the same
 * descriptor (nnrt.h) that nnc generates, so that bench_main.c times both alike.
 *
 * It shows what the generated code could reach: the step's GEMMs plus one simple loop per
 * layer (bias + relu forward; relu mask and bias gradient backward; softmax cross-entropy
 * and its gradient), with the SGD update fused into the weight-gradient GEMM (beta = 1) when
 * momentum is 0. Built once per shape, 2 or 3 layers:
 *   -DREF_NAME="w1_ref" -DREF_D0=784 -DREF_D1=128 -DREF_D2=10 [-DREF_D3=...] -DREF_BATCH=32
 */
#include "nnrt.h"
#include "in_place_gemm.h"

#include <cblas.h>

#include <math.h>
#include <string.h>

#ifndef REF_D3
#define REF_D3 0
#endif
#define L (REF_D3 ? 3 : 2) /* layers */

/* Widths, and sizes of the params of layer l (W then b). */
#define D(l) ((l) == 0 ? REF_D0 : (l) == 1 ? REF_D1 : (l) == 2 ? REF_D2 : REF_D3)
#define P(l) ((l) >= 1 && (l) <= L ? D((l)-1) * D(l) + D(l) : 0)
#define NP   (P(1) + P(2) + P(3))

/* fixed arena: params, then their gradients, then velocities, each layer by layer. */
#define W_OFF(l) (((l) > 1 ? P(1) : 0) + ((l) > 2 ? P(2) : 0))
#define B_OFF(l) (W_OFF(l) + D((l)-1) * D(l))
/* varying arena (per sample): x, y, loss, then per layer z (relu'd in place) and dz. */
#define X_OFF     0
#define Y_OFF     REF_D0
#define LOSS_OFF  (REF_D0 + D(L))
#define Z_OFF(l)  (LOSS_OFF + 1 + 2 * (((l) > 1 ? D(1) : 0) + ((l) > 2 ? D(2) : 0)))
#define DZ_OFF(l) (Z_OFF(l) + D(l))
#define VARYING   (Z_OFF(L) + 2 * D(L))

#define FX(off) ((float *)ctx->fixed + (off))
#define VA(off) ((float *)ctx->varying + (int64_t)(off)*ctx->batch_cap)
#define ACT(l)  ((l) == 0 ? VA(X_OFF) : VA(Z_OFF(l)))

/* The elementwise loops, written so that the compiler vectorises them. */
static void bias_relu(float *restrict z, const float *restrict bias, int n) {
    for (int j = 0; j < n; j++) {
        float v = z[j] + bias[j];
        z[j] = v > 0 ? v : 0;
    }
}

static void add_bias(float *restrict z, const float *restrict bias, int n) {
    for (int j = 0; j < n; j++) z[j] += bias[j];
}

static void relu_mask(float *restrict d, const float *restrict a, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = a[i] > 0 ? d[i] : 0;
}

static void axpy(float *restrict y, float alpha, const float *restrict x, int n) {
    for (int j = 0; j < n; j++) y[j] += alpha * x[j];
}

static void forward(nnrt_ctx *ctx) {
    int b = (int)ctx->batch;
    for (int l = 1; l <= L; l++) {
        int k = D(l - 1), n = D(l);
        float *z = VA(Z_OFF(l));
        const float *bias = FX(B_OFF(l));
        nnrt_sgemm_nn(b, n, k, 1.0f, ACT(l - 1), k, FX(W_OFF(l)), n, 0.0f, z, n);
        if (l < L)
            for (int i = 0; i < b; i++) bias_relu(z + (int64_t)i * n, bias, n);
        else
            for (int i = 0; i < b; i++) add_bias(z + (int64_t)i * n, bias, n);
    }
    /* loss = sum(y) * logsumexp(z) - y.z */
    int c = D(L);
    const float *z = VA(Z_OFF(L)), *y = VA(Y_OFF);
    float *loss = VA(LOSS_OFF);
    for (int i = 0; i < b; i++) {
        float mx = z[i * c];
        for (int j = 1; j < c; j++) mx = z[i * c + j] > mx ? z[i * c + j] : mx;
        float s = 0, yz = 0, ys = 0;
        for (int j = 0; j < c; j++) {
            s += expf(z[i * c + j] - mx);
            yz += y[i * c + j] * z[i * c + j];
            ys += y[i * c + j];
        }
        loss[i] = ys * (mx + logf(s)) - yz;
    }
}

/* The backward pass after forward. With lr != 0 each gradient goes straight into its param
 * (W += -lr * A^T dZ, b += -lr * sum dZ); else into the gradient buffers. */
static void backward(nnrt_ctx *ctx, float lr) {
    int b = (int)ctx->batch, c = D(L);
    const float *z = VA(Z_OFF(L)), *y = VA(Y_OFF);
    float *dz = VA(DZ_OFF(L));
    float inv_b = 1.0f / (float)b;
    for (int i = 0; i < b; i++) { /* d cost/d z = (softmax(z) * sum(y) - y) / B */
        float mx = z[i * c], s = 0, ys = 0;
        for (int j = 1; j < c; j++) mx = z[i * c + j] > mx ? z[i * c + j] : mx;
        for (int j = 0; j < c; j++) {
            dz[i * c + j] = expf(z[i * c + j] - mx);
            s += dz[i * c + j];
            ys += y[i * c + j];
        }
        for (int j = 0; j < c; j++) dz[i * c + j] = (dz[i * c + j] * ys / s - y[i * c + j]) * inv_b;
    }
    for (int l = L; l >= 1; l--) {
        int k = D(l - 1), n = D(l);
        const float *d = VA(DZ_OFF(l));
        if (l > 1) { /* dZ_{l-1} = (dZ W^T) * relu'(z_{l-1}); W is read before its update */
            float *dprev = VA(DZ_OFF(l - 1));
            const float *a = VA(Z_OFF(l - 1));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, k, n, 1.0f, d, n, FX(W_OFF(l)),
                        n, 0.0f, dprev, k);
            relu_mask(dprev, a, (int64_t)b * k);
        }
        float *gb = lr != 0 ? FX(B_OFF(l)) : FX(NP + B_OFF(l));
        float scale = lr != 0 ? -lr : 1.0f;
        if (lr == 0) memset(gb, 0, (size_t)n * sizeof(float));
        for (int i = 0; i < b; i++) axpy(gb, scale, d + (int64_t)i * n, n);
        float *w = lr != 0 ? FX(W_OFF(l)) : FX(NP + W_OFF(l));
        if (l == 1) /* A is the data, as the generated code: its zero columns skipped, the
                     * forward product's list of them taken again */
            nnrt_sgemm_tn_again(k, n, b, scale, ACT(0), k, d, n, lr != 0 ? 1.0f : 0.0f, w, n);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, b, scale, ACT(l - 1), k, d,
                        n, lr != 0 ? 1.0f : 0.0f, w, n);
    }
}

static void predict(nnrt_ctx *ctx) {
    forward(ctx);
} /* targets may be garbage: loss unused */

static void grad(nnrt_ctx *ctx) {
    forward(ctx);
    backward(ctx, 0.0f);
}

static void sgd_step(nnrt_ctx *ctx, double lr, double momentum) {
    forward(ctx);
    if (momentum == 0) {
        backward(ctx, (float)lr);
        return;
    }
    backward(ctx, 0.0f);
    float mu = (float)momentum, eta = (float)lr;
    float *p = FX(0), *g = FX(NP), *v = FX(2 * NP);
    for (int64_t i = 0; i < NP; i++) {
        v[i] = mu * v[i] + g[i];
        p[i] -= eta * v[i];
    }
}

#define PARAM(nm, l, is_b)                                                                         \
    {                                                                                              \
        .name = nm, .rank = (is_b) ? 1 : 2, .dims = {(is_b) ? D(l) : D((l)-1), (is_b) ? 0 : D(l)}, \
        .numel = (is_b) ? D(l) : D((l)-1) * D(l), .offset = (is_b) ? B_OFF(l) : W_OFF(l),          \
        .init = (is_b) ? NNRT_INIT_ZEROS : NNRT_INIT_GLOROT,                                       \
        .grad_offset = NP + ((is_b) ? B_OFF(l) : W_OFF(l)),                                        \
        .velocity_offset = 2 * NP + ((is_b) ? B_OFF(l) : W_OFF(l))                                 \
    }

static const nnrt_tensor params[] = {
    PARAM("h1.W", 1, 0), PARAM("h1.b", 1, 1), PARAM("h2.W", 2, 0),
    PARAM("h2.b", 2, 1), PARAM("h3.W", 3, 0), PARAM("h3.b", 3, 1),
};

#define VEC(nm, n, off)                                                                            \
    {                                                                                              \
        .name = nm, .rank = (n) > 1 ? 1 : 0, .dims = {(n) > 1 ? (n) : 0}, .numel = n,              \
        .offset = off, .varying = 1, .grad_offset = -1, .velocity_offset = -1                      \
    }

static const nnrt_tensor inputs[] = {VEC("x", REF_D0, X_OFF)};
static const nnrt_tensor targets[] = {VEC("y", D(L), Y_OFF)};

const nnrt_model nnrt_model_desc = {
    .abi_version = NNRT_ABI_VERSION,
    .name = REF_NAME,
    .source = __FILE__,
    .fixed_elems = 3 * NP,
    .varying_elems = VARYING,
    .n_params = 2 * L,
    .params = params,
    .n_inputs = 1,
    .inputs = inputs,
    .n_targets = 1,
    .targets = targets,
    .output = VEC("z", D(L), Z_OFF(L)),
    .loss = VEC("loss", 1, LOSS_OFF),
    .forward = forward,
    .predict = predict,
    .grad = grad,
    .sgd_step = sgd_step,
    .train = {.optimizer = "sgd", .lr = 0.1, .batch = REF_BATCH, .seed = 1},
};
