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
 * update the weights inside its GEMM (docs/codegen.md, "The fused SGD update").
 *
 * Images are [C, H, W] per sample, the samples consecutive (NCHW). A convolution is
 * im2col of the whole batch into a [C_in*kH*kW, n*H_out*W_out] matrix, then ONE GEMM with
 * the batch folded into its N dimension (docs/codegen.md, "Convolutions").
 *
 * Token ids (take, scatter_add, one_hot) use c_in for the rows of the table (one_hot: k),
 * w for a row's length (one_hot: k) and c_out for the ids of one sample. The ids are the
 * last operand, numbers of type T; an id that is not a whole number in 0..c_in-1 stops the
 * run with an error naming it. scatter_add reads alpha and beta as conv2d_weight_grad does:
 * table = alpha * (the rows of g added at their ids, over the batch) + beta * table. */
#ifndef NNRT_CONV_H
#define NNRT_CONV_H

#include <stdint.h>

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
    X(a_step)    /* elements from one sample of operand a to the next: 0 when it is the same */    \
    X(b_step)    /*   for every sample */                                                          \
    X(bias_step) /* conv2d: 1 for a bias per channel, 0 for one scalar bias */

#define NNRT_WINDOW_FIELD(name) int64_t name;
typedef struct nnrt_window {
    NNRT_WINDOW_FIELDS(NNRT_WINDOW_FIELD)
} nnrt_window;
#undef NNRT_WINDOW_FIELD

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
