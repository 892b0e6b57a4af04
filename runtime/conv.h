/* conv.h: the kernels that compiled models call for images (convolution, pooling) and
 * reshapes, one per WINDOW row of compiler/ops.def, over the whole batch at once.
 *
 * Every kernel has one signature, with T float (_f32) or double (_f64):
 *
 *   void nnrt_NAME_f32(const nnrt_window *g, int64_t n, T alpha, T beta,
 *                      const T *a, const T *b, const T *c, T *out, T *scratch);
 *
 * g is the geometry (below), n the number of samples (the batch when an operand varies,
 * else 1), a, b, c the operands in the row's order (NULL past its arity), out the result
 * and scratch memory the model's memory plan gives the step (compiler/plan.c,
 * plan_window_scratch): (C_in*kH*kW + C_out) * H_out*W_out elements per sample for the
 * three convolution kernels, none for the rest. Nothing is allocated. alpha and beta are
 * read by conv2d_weight_grad alone: out = alpha * dW + beta * out, which lets sgd_step
 * update the weights inside its GEMM (docs/codegen.md, "The fused SGD update"). The scratch
 * of a conv2d is kept for the weight gradient of the same input, which then need not build
 * the im2col matrix again (g->cols_ready).
 *
 * Images are [C, H, W] per sample, the samples consecutive (NCHW). A convolution with
 * stride 1 runs direct loops over the whole batch (nnrt_conv_is_direct; the weight gradient
 * of many taps by channels, nnrt_conv_weight_grad_by_channels); any other is im2col of the
 * whole batch into a [C_in*kH*kW, n*H_out*W_out] matrix, then ONE GEMM with the batch folded
 * into its N dimension (docs/codegen.md, "Convolutions").
 *
 * Token ids (take, scatter_add, one_hot) use c_in for the rows of the table (one_hot: k),
 * w for a row's length (one_hot: k) and c_out for the ids of one sample. The ids are the
 * last operand, numbers of type T; an id that is not a whole number in 0..c_in-1 stops the
 * run with an error naming it. scatter_add reads alpha and beta as conv2d_weight_grad does:
 * table = alpha * (the rows of g added at their ids, over the batch) + beta * table. */
#ifndef NNRT_CONV_H
#define NNRT_CONV_H

#include <stdint.h>

/* The calling thread's model calls start at this sample of the step's whole batch (a worker's
 * or a rank's share, nnrt_ctx.first_row; 0 otherwise): a bad id's message counts from it. */
void rt_ids_first_row(int64_t first_row);

/* The geometry, made by the compiler as a constant array of int64 in this order. */
#define NNRT_WINDOW_FIELDS(X)                                                                      \
    X(c_in) /* the image read: channels, height, width (a reshape: c_in elements) */               \
    X(h)                                                                                           \
    X(w)                                                                                           \
    X(c_out) /* the image written (a reshape: c_out elements) */                                   \
    X(h_out)                                                                                       \
    X(w_out)                                                                                       \
    X(kh) /* the window */                                                                         \
    X(kw)                                                                                          \
    X(stride)                                                                                      \
    X(pad)                                                                                         \
    X(dil)                                                                                         \
    X(a_step)     /* elements from one sample of operand a to the next: 0 when it is the same */   \
    X(b_step)     /*   for every sample */                                                         \
    X(bias_step)  /* conv2d: 1 for a bias per channel, 0 for one scalar bias */                    \
    X(cols_ready) /* conv2d_weight_grad: 1 when scratch holds im2col(a) already, left there */     \
                  /* by the conv2d of the same input and window (compiler/plan.c) */

#define NNRT_WINDOW_FIELD(name) int64_t name;
typedef struct nnrt_window {
    NNRT_WINDOW_FIELDS(NNRT_WINDOW_FIELD)
} nnrt_window;
#undef NNRT_WINDOW_FIELD

/* Convolutions of stride 1 without dilation, padded by less than the kernel's size, run as
 * direct convolutions: no im2col matrix and no GEMM, but a block of output channels times LANES
 * output columns at a time in registers (conv_kernels.inc, "Direct convolution"). For the
 * small channel counts and odd shapes of image models (LeNet's first layer is a [6, 25] by
 * [25, 50176] product per step) that beats the GEMM, and it needs no relayout of results.
 * The compiler asks the same question to plan the scratch memory (compiler/plan.c). */
enum {
    NNRT_DIRECT_LANES = 16,    /* output columns at a time */
    NNRT_DIRECT_BLOCK = 4,     /* the weight gradient by taps: output channels at a time, at most */
    NNRT_DIRECT_MAX_BLOCK = 8, /* the correlation: output channels at a time, 4, 6 or 8 */
    NNRT_DIRECT_TAPS = 7,      /* the weight gradient by taps: kernel columns at a time, at most */
    /* zero columns after each padded row, read by the last chunk of a row */
    NNRT_DIRECT_SLACK = NNRT_DIRECT_LANES + NNRT_DIRECT_TAPS
};

static inline int nnrt_conv_is_direct(const nnrt_window *g) {
    return g->stride == 1 && g->dil == 1 && g->pad < g->kh && g->pad < g->kw;
}

/* The weight gradient has two direct kernels. With few taps (C_in*kH*kW <= 32, LeNet's
 * first layer) each weight's sum runs over LANES output columns at a time. With more, the
 * output channels go into the lanes instead (a vector of dy per position, each input value
 * broadcast to it, a sum per tap in registers: conv_kernels.inc, "by channels"), which needs
 * the kernel's width known when compiled (up to MAX_KW) and at least half the lanes filled
 * (C_out >= LANES / 2); below that the GEMM of im2col does better. */
enum { NNRT_DIRECT_WEIGHT_GRAD_MAX_K = 32, NNRT_BY_CHANNELS_MAX_KW = 7 };

static inline int nnrt_conv_weight_grad_by_taps(const nnrt_window *g) {
    return nnrt_conv_is_direct(g) && g->c_in * g->kh * g->kw <= NNRT_DIRECT_WEIGHT_GRAD_MAX_K;
}

static inline int nnrt_conv_weight_grad_by_channels(const nnrt_window *g) {
    return nnrt_conv_is_direct(g) && !nnrt_conv_weight_grad_by_taps(g) &&
           g->kw <= NNRT_BY_CHANNELS_MAX_KW && 2 * g->c_out >= NNRT_DIRECT_LANES;
}

static inline int nnrt_conv_weight_grad_is_direct(const nnrt_window *g) {
    return nnrt_conv_weight_grad_by_taps(g) || nnrt_conv_weight_grad_by_channels(g);
}

static inline int64_t nnrt_max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* The scratch elements a direct convolution kernel needs for a whole call (for one image at
 * a time, whatever the batch): the padded image, the packed weights, and for the weight
 * gradient dy's rows laid out for its vectors and the running sums. */
static inline int64_t nnrt_conv_direct_scratch(const nnrt_window *g) {
    int64_t lanes = NNRT_DIRECT_LANES, block = NNRT_DIRECT_BLOCK, taps = g->kh * g->kw;
    int64_t slack = NNRT_DIRECT_SLACK;
    int64_t image = g->c_in * (g->h + 2 * g->pad) * (g->w + 2 * g->pad + slack);
    int64_t qh = g->kh - 1 - g->pad, qw = g->kw - 1 - g->pad; /* the input gradient's padding */
    int64_t grads = g->c_out * (g->h_out + 2 * qh) * (g->w_out + 2 * qw + slack);
    int64_t rows = (g->c_out + block - 1) * g->h_out * ((g->w_out + lanes - 1) / lanes * lanes);
    /* the correlation's packed weights: blocks of up to MAX_BLOCK channels */
    int64_t forward = (g->c_out + NNRT_DIRECT_MAX_BLOCK - 1) * g->c_in * taps + image;
    int64_t input_grad = (g->c_in + NNRT_DIRECT_MAX_BLOCK - 1) * g->c_out * taps + grads;
    int64_t weight_grad = image + rows + g->c_out * g->c_in * taps * lanes;
    /* by channels: the padded image without slack, dy's positions as vectors of channels
     * and a vector of sums per tap */
    int64_t out_lanes = (g->c_out + lanes - 1) / lanes * lanes;
    int64_t by_channels = g->c_in * (g->h + 2 * g->pad) * (g->w + 2 * g->pad) +
                          out_lanes * (g->h_out * g->w_out + g->c_in * taps);
    return nnrt_max64(nnrt_max64(forward, input_grad), nnrt_max64(weight_grad, by_channels));
}

#define NNRT_WINDOW_KERNELS(X)                                                                     \
    X(conv2d)                                                                                      \
    X(conv2d_input_grad)                                                                           \
    X(conv2d_weight_grad)                                                                          \
    X(conv2d_bias_grad)                                                                            \
    X(max_pool2d)                                                                                  \
    X(max_pool2d_grad)                                                                             \
    X(avg_pool2d)                                                                                  \
    X(avg_pool2d_grad)                                                                             \
    X(reshape)                                                                                     \
    X(flatten)                                                                                     \
    X(take)                                                                                        \
    X(scatter_add)                                                                                 \
    X(one_hot)

#define NNRT_WINDOW_DECLARE(name)                                                                  \
    void nnrt_##name##_f32(const nnrt_window *g, int64_t n, float alpha, float beta,               \
                           const float *a, const float *b, const float *c, float *out,             \
                           float *scratch);                                                        \
    void nnrt_##name##_f64(const nnrt_window *g, int64_t n, double alpha, double beta,             \
                           const double *a, const double *b, const double *c, double *out,         \
                           double *scratch);
NNRT_WINDOW_KERNELS(NNRT_WINDOW_DECLARE)
#undef NNRT_WINDOW_DECLARE

#endif
