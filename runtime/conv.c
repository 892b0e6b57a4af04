/* conv.c: convolution, pooling and reshapes over the whole batch, for compiled models
 * (conv.h says what each kernel is given). The element type's kernels come from
 * conv_kernels.inc, included once for float and once for double. */
#include "conv.h"
#include "util.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The positions [*lo, *hi) of an output row whose input column o*stride - pad + tap lies
 * inside [0, size): outside it the window reads padding. */
static void inside_range(int64_t n_out, int64_t stride, int64_t pad, int64_t tap, int64_t size,
                         int64_t *lo, int64_t *hi) {
    int64_t first = pad - tap; /* o*stride >= first */
    int64_t a = first <= 0 ? 0 : (first + stride - 1) / stride;
    int64_t last = size + pad - tap; /* o*stride < last */
    int64_t b = last <= 0 ? 0 : (last + stride - 1) / stride;
    if (b > n_out) b = n_out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* NaN from the bits, without a floating-point comparison (which compilers branch on). */
static inline unsigned is_nan_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7fffffffu) > 0x7f800000u;
}

static inline unsigned is_nan_f64(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7fffffffffffffffu) > 0x7ff0000000000000u;
}

/* An id that names no row of the table: PyTorch raises here too ("index out of range"). The
 * batch sample and the id's place in it (ids flattened) say where, in the data's order. */
static _Thread_local int64_t ids_first_row;

void rt_ids_first_row(int64_t first_row) {
    ids_first_row = first_row;
}

static _Noreturn void bad_id(const char *op, double id, int64_t sample, int64_t at, int64_t rows) {
    sample += ids_first_row;
    char shown[40];
    snprintf(shown, sizeof shown, id == floor(id) && fabs(id) < 1e15 ? "%.0f" : "%g", id);
    rt_fatal("%s: token id %s (sample %lld of the batch, id %lld of the sample) is not a whole "
             "number in 0..%lld: ids index the %lld rows of the table",
             op, shown, (long long)sample, (long long)at, (long long)rows - 1, (long long)rows);
}

#define T          float
#define SUFFIX(id) id##_f32
#define GEMM       cblas_sgemm
#include "conv_kernels.inc"
#undef T
#undef SUFFIX
#undef GEMM

#define T          double
#define SUFFIX(id) id##_f64
#define GEMM       cblas_dgemm
#include "conv_kernels.inc"
#undef T
#undef SUFFIX
#undef GEMM
