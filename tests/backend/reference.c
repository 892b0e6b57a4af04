/* reference.c: the IR evaluated element by element in double precision, written straight
 * from the semantics in ops.def and nothing else of the back end: what the tests compare
 * the compiled code with. An elementwise op is its row's scalar semantics (the FOLD
 * expression constant folding uses too); a row op or a reduction is ref_NAME below, one
 * for each row, or this file does not build. Slow (it recomputes shared values) but plain. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double leaf(const Model *m, const Value *v, int64_t sample, int64_t i) {
    switch (v->op) {
    case OP_const: return v->num;
    case OP_inv_batch: return 1.0 / (double)m->ctx.batch;
    default: return tensor_get(m, model_tensor(m, v->name), sample, i);
    }
}

/* ---- dropout, as docs/codegen.md defines its masks ---- */

static uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double ref_dropout_factor(const Model *m, const Value *v, int64_t s, int64_t i) {
    const uint64_t step = 0x9E3779B97F4A7C15ull;
    double rate = v->opt[0];
    if (!m->ctx.training) return 1;
    uint64_t key = splitmix64_mix(m->ctx.noise_seed ^ splitmix64_mix((uint64_t)v->salt * step));
    uint64_t element = (uint64_t)(s * shape_numel(v->shape) + i);
    uint64_t hash = splitmix64_mix(key + element * step);
    bool keep = (hash >> 32) < (uint64_t)llround((1 - rate) * 4294967296.0);
    return keep ? 1 / (1 - rate) : 0;
}

/* ---- rows and reductions: ref_NAME for every ROW and REDUCE row of ops.def ---- */

/* Row r of u (length C) into row[], and its log-sum-exp. */
static double load_row(const Model *m, const Value *u, int64_t s, int64_t r, int64_t C,
                       double *row) {
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; c++) {
        row[c] = ref_eval(m, u, s, r * C + c);
        if (row[c] > mx) mx = row[c];
    }
    for (int64_t c = 0; c < C; c++) sum += exp(row[c] - mx);
    return mx + log(sum);
}

/* The length of the rows of v's first operand. */
static int64_t row_length(const Value *v) {
    const Value *z = v->args[0];
    return z->shape.dim[z->shape.rank - 1];
}

/* log_softmax(z)[i] of sample s. */
static double log_softmax_at(const Model *m, const Value *z, int64_t s, int64_t i, int64_t C) {
    double *row = malloc((size_t)C * sizeof *row);
    double lse = load_row(m, z, s, i / C, C, row), r = row[i % C] - lse;
    free(row);
    return r;
}

static double ref_softmax(const Model *m, const Value *v, int64_t s, int64_t i) {
    return exp(log_softmax_at(m, v->args[0], s, i, row_length(v)));
}

static double ref_log_softmax(const Model *m, const Value *v, int64_t s, int64_t i) {
    return log_softmax_at(m, v->args[0], s, i, row_length(v));
}

/* -sum(y * log_softmax(z)) over every row of the sample. */
static double ref_softmax_ce(const Model *m, const Value *v, int64_t s, int64_t i) {
    (void)i;
    int64_t C = row_length(v), n = shape_numel(v->args[0]->shape);
    double result = 0;
    for (int64_t k = 0; k < n; k++)
        result -= ref_eval(m, v->args[1], s, k) * log_softmax_at(m, v->args[0], s, k, C);
    return result;
}

/* The sum over i's row of f(a)[k] * g(b)[k], with b NULL for f(a) alone. */
static double row_dot(const Model *m, const Value *a, const Value *b, int64_t s, int64_t i,
                      int64_t C) {
    double sum = 0;
    for (int64_t k = i / C * C; k < i / C * C + C; k++)
        sum += ref_eval(m, a, s, k) * (b ? ref_eval(m, b, s, k) : 1);
    return sum;
}

/* s * (g - rowsum(g * s)) */
static double ref_softmax_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *sm = v->args[0], *g = v->args[1];
    double dot = row_dot(m, g, sm, s, i, row_length(v));
    return ref_eval(m, sm, s, i) * (ref_eval(m, g, s, i) - dot);
}

/* g - exp(l) * rowsum(g) */
static double ref_log_softmax_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *l = v->args[0], *g = v->args[1];
    double total = row_dot(m, g, NULL, s, i, row_length(v));
    return ref_eval(m, g, s, i) - exp(ref_eval(m, l, s, i)) * total;
}

/* g * (softmax(z) * rowsum(y) - y) */
static double ref_softmax_ce_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *z = v->args[0], *y = v->args[1];
    int64_t C = row_length(v);
    double p = exp(log_softmax_at(m, z, s, i, C)), ysum = row_dot(m, y, NULL, s, i, C);
    return ref_eval(m, v->args[2], s, 0) * (p * ysum - ref_eval(m, y, s, i));
}

/* Where element i of a value of shape `to` reads an operand of shape `from` that broadcasts
 * to it (NumPy's rule): i's index along each axis, aligned on the right, or 0 where `from`
 * is 1. */
static int64_t broadcast_index(Shape to, Shape from, int64_t i) {
    int64_t at = 0, stride = 1;
    for (int k = 1; k <= to.rank; k++) {
        int64_t index = i % to.dim[to.rank - k];
        i /= to.dim[to.rank - k];
        if (k > from.rank) continue;
        int64_t d = from.dim[from.rank - k];
        if (d != 1) at += index * stride;
        stride *= d;
    }
    return at;
}

/* Element i of a reduction of u to v's shape: the sum of u's elements that read it when v is
 * broadcast back to u's shape. */
static double sum_down(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *u = v->args[0];
    int64_t n = shape_numel(u->shape);
    double sum = 0;
    for (int64_t j = 0; j < n; j++)
        if (broadcast_index(u->shape, v->shape, j) == i) sum += ref_eval(m, u, s, j);
    return sum;
}
#define ref_sum    sum_down
#define ref_sum_to sum_down

static double ref_mean(const Model *m, const Value *v, int64_t s, int64_t i) {
    return sum_down(m, v, s, i) / (double)shape_numel(v->args[0]->shape);
}

/* Along one axis: u is outer x n x inner around it, and element i of the result is
 * (o, j), keepdim or not. */
typedef struct AxisRun {
    int64_t first, n, step; /* u's elements first, first + step, ... (n of them) */
} AxisRun;

static AxisRun axis_run(const Value *v, int64_t i) {
    Shape u = v->args[0]->shape;
    int axis = ir_reduced_axis(v);
    int64_t inner = 1;
    for (int k = axis + 1; k < u.rank; k++) inner *= u.dim[k];
    int64_t n = u.dim[axis];
    return (AxisRun){i / inner * n * inner + i % inner, n, inner};
}

static double ref_sum_axis(const Model *m, const Value *v, int64_t s, int64_t i) {
    AxisRun r = axis_run(v, i);
    double sum = 0;
    for (int64_t k = 0; k < r.n; k++) sum += ref_eval(m, v->args[0], s, r.first + k * r.step);
    return sum;
}

static double ref_mean_axis(const Model *m, const Value *v, int64_t s, int64_t i) {
    return ref_sum_axis(m, v, s, i) / (double)axis_run(v, i).n;
}

/* NaN if any element is (torch.amax, torch.amin). */
static double extreme_along(const Model *m, const Value *v, int64_t s, int64_t i, double sign) {
    AxisRun r = axis_run(v, i);
    double best = -INFINITY * sign;
    for (int64_t k = 0; k < r.n; k++) {
        double x = ref_eval(m, v->args[0], s, r.first + k * r.step);
        if (isnan(x)) return x;
        if (x * sign > best * sign) best = x;
    }
    return best;
}

static double ref_max_axis(const Model *m, const Value *v, int64_t s, int64_t i) {
    return extreme_along(m, v, s, i, 1);
}

static double ref_min_axis(const Model *m, const Value *v, int64_t s, int64_t i) {
    return extreme_along(m, v, s, i, -1);
}

/* The same elements: only the shape has one more axis of size 1. */
static double ref_unsqueeze(const Model *m, const Value *v, int64_t s, int64_t i) {
    return ref_eval(m, v->args[0], s, i);
}
/* ---- images: ref_NAME for every WINDOW row, straight from the definitions (sums over
 * the window's taps; no im2col) ---- */

/* Element (c, i, j) of the image v of sample s, 0 outside it (the padding). */
static double pixel(const Model *m, const Value *v, int64_t s, int64_t c, int64_t i, int64_t j) {
    int64_t H = v->shape.dim[1], W = v->shape.dim[2];
    if (i < 0 || i >= H || j < 0 || j >= W) return 0;
    return ref_eval(m, v, s, (c * H + i) * W + j);
}

/* The samples a batch-summing op adds: all of them when an operand varies. */
static int64_t summed_samples(const Model *m, const Value *v) {
    bool varies = false;
    for (int k = 0; k < v->nargs; k++) varies |= v->args[k]->varying;
    return varies ? m->ctx.batch : 1;
}

static double ref_conv2d(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    const Value *x = v->args[0], *w = v->args[1], *b = v->args[2];
    int64_t o = i / (g.h_out * g.w_out), oh = i / g.w_out % g.h_out, ow = i % g.w_out;
    double sum = ref_eval(m, b, s, b->shape.rank ? o : 0);
    for (int64_t c = 0; c < g.c_in; c++)
        for (int64_t ki = 0; ki < g.kh; ki++)
            for (int64_t kj = 0; kj < g.kw; kj++)
                sum += pixel(m, x, s, c, oh * g.stride - g.pad + ki * g.dil,
                             ow * g.stride - g.pad + kj * g.dil) *
                       ref_eval(m, w, s, ((o * g.c_in + c) * g.kh + ki) * g.kw + kj);
    return sum;
}

/* dx[c, ih, iw] = the sum of dy[o, oh, ow] w[o, c, ki, kj] over the taps that read it. */
static double ref_conv2d_input_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    const Value *dy = v->args[0], *w = v->args[1];
    int64_t c = i / (g.h * g.w), ih = i / g.w % g.h, iw = i % g.w;
    double sum = 0;
    for (int64_t o = 0; o < g.c_out; o++)
        for (int64_t oh = 0; oh < g.h_out; oh++)
            for (int64_t ow = 0; ow < g.w_out; ow++)
                for (int64_t ki = 0; ki < g.kh; ki++)
                    for (int64_t kj = 0; kj < g.kw; kj++)
                        if (oh * g.stride - g.pad + ki * g.dil == ih &&
                            ow * g.stride - g.pad + kj * g.dil == iw)
                            sum += ref_eval(m, dy, s, (o * g.h_out + oh) * g.w_out + ow) *
                                   ref_eval(m, w, s, ((o * g.c_in + c) * g.kh + ki) * g.kw + kj);
    return sum;
}

static double ref_conv2d_weight_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    (void)s;
    WindowGeometry g = ir_window_geometry(v);
    const Value *x = v->args[0], *dy = v->args[1];
    int64_t o = i / (g.c_in * g.kh * g.kw), c = i / (g.kh * g.kw) % g.c_in, ki = i / g.kw % g.kh,
            kj = i % g.kw;
    double sum = 0;
    for (int64_t b = 0; b < summed_samples(m, v); b++)
        for (int64_t oh = 0; oh < g.h_out; oh++)
            for (int64_t ow = 0; ow < g.w_out; ow++)
                sum += ref_eval(m, dy, b, (o * g.h_out + oh) * g.w_out + ow) *
                       pixel(m, x, b, c, oh * g.stride - g.pad + ki * g.dil,
                             ow * g.stride - g.pad + kj * g.dil);
    return sum;
}

static double ref_conv2d_bias_grad(const Model *m, const Value *v, int64_t s, int64_t o) {
    (void)s;
    int64_t P = v->args[0]->shape.dim[1] * v->args[0]->shape.dim[2];
    double sum = 0;
    for (int64_t b = 0; b < summed_samples(m, v); b++)
        for (int64_t p = 0; p < P; p++) sum += ref_eval(m, v->args[0], b, o * P + p);
    return sum;
}

/* The (row, column) of the maximum of window (oh, ow) of channel c: the first in row-major
 * order, a NaN over anything (the last NaN), the window's first element if all are -inf;
 * the padding never wins. */
static void window_max(const Model *m, const Value *x, const WindowGeometry *g, int64_t s,
                       int64_t c, int64_t oh, int64_t ow, int64_t *bi, int64_t *bj) {
    double best = -INFINITY;
    *bi = *bj = -1;
    for (int64_t ki = 0; ki < g->kh; ki++)
        for (int64_t kj = 0; kj < g->kw; kj++) {
            int64_t i = oh * g->stride - g->pad + ki, j = ow * g->stride - g->pad + kj;
            if (i < 0 || i >= g->h || j < 0 || j >= g->w) continue;
            double x_ij = pixel(m, x, s, c, i, j);
            if (*bi < 0) *bi = i, *bj = j;
            if (x_ij > best || isnan(x_ij)) best = x_ij, *bi = i, *bj = j;
        }
}

static double ref_max_pool2d(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    int64_t c = i / (g.h_out * g.w_out), oh = i / g.w_out % g.h_out, ow = i % g.w_out, bi, bj;
    window_max(m, v->args[0], &g, s, c, oh, ow, &bi, &bj);
    return pixel(m, v->args[0], s, c, bi, bj);
}

static double ref_max_pool2d_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    int64_t c = i / (g.h * g.w), ih = i / g.w % g.h, iw = i % g.w, bi, bj;
    double sum = 0;
    for (int64_t oh = 0; oh < g.h_out; oh++)
        for (int64_t ow = 0; ow < g.w_out; ow++) {
            window_max(m, v->args[0], &g, s, c, oh, ow, &bi, &bj);
            if (bi == ih && bj == iw)
                sum += ref_eval(m, v->args[1], s, (c * g.h_out + oh) * g.w_out + ow);
        }
    return sum;
}

static double ref_avg_pool2d(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    int64_t c = i / (g.h_out * g.w_out), oh = i / g.w_out % g.h_out, ow = i % g.w_out;
    double sum = 0;
    for (int64_t ki = 0; ki < g.kh; ki++)
        for (int64_t kj = 0; kj < g.kw; kj++)
            sum +=
                pixel(m, v->args[0], s, c, oh * g.stride - g.pad + ki, ow * g.stride - g.pad + kj);
    return sum / (double)(g.kh * g.kw);
}

static double ref_avg_pool2d_grad(const Model *m, const Value *v, int64_t s, int64_t i) {
    WindowGeometry g = ir_window_geometry(v);
    int64_t c = i / (g.h * g.w), ih = i / g.w % g.h, iw = i % g.w;
    double sum = 0;
    for (int64_t oh = 0; oh < g.h_out; oh++)
        for (int64_t ow = 0; ow < g.w_out; ow++) {
            int64_t ki = ih - (oh * g.stride - g.pad), kj = iw - (ow * g.stride - g.pad);
            if (ki >= 0 && ki < g.kh && kj >= 0 && kj < g.kw)
                sum += ref_eval(m, v->args[0], s, (c * g.h_out + oh) * g.w_out + ow);
        }
    return sum / (double)(g.kh * g.kw);
}

static double ref_reshape(const Model *m, const Value *v, int64_t s, int64_t i) {
    return ref_eval(m, v->args[0], s, i);
}
#define ref_flatten ref_reshape

/* ---- token ids: straight from the definitions, one element at a time ---- */

/* The row ids' element j of sample s names (the kernels stop the run on a bad one; the
 * cases only hold good ids). */
static int64_t id_at(const Model *m, const Value *ids, int64_t s, int64_t j) {
    return (int64_t)ref_eval(m, ids, s, j);
}

/* y[j, d] = E[ids[j], d]. */
static double ref_take(const Model *m, const Value *v, int64_t s, int64_t i) {
    int64_t dim = v->args[0]->shape.dim[1];
    return ref_eval(m, v->args[0], s, id_at(m, v->args[1], s, i / dim) * dim + i % dim);
}

/* dE[r, d] = the sum of g[j, d] over every sample and every j with ids[j] = r. */
static double ref_scatter_add(const Model *m, const Value *v, int64_t s, int64_t i) {
    (void)s;
    int64_t dim = v->shape.dim[1], row = i / dim, d = i % dim;
    int64_t n_ids = shape_numel(v->args[1]->shape);
    double sum = 0;
    for (int64_t b = 0; b < summed_samples(m, v); b++)
        for (int64_t j = 0; j < n_ids; j++)
            if (id_at(m, v->args[1], b, j) == row) sum += ref_eval(m, v->args[0], b, j * dim + d);
    return sum;
}

static double ref_one_hot(const Model *m, const Value *v, int64_t s, int64_t i) {
    int64_t k = (int64_t)v->opt[0];
    return id_at(m, v->args[0], s, i / k) == i % k;
}

static double ref_batch_sum(const Model *m, const Value *v, int64_t s, int64_t i) {
    (void)s;
    double sum = 0;
    for (int64_t b = 0; b < m->ctx.batch; b++) sum += ref_eval(m, v->args[0], b, i);
    return sum;
}

/* ---- layout: ref_NAME for every LAYOUT row, from the index map's definition ---- */

/* Element i of shape s as its index along each axis. */
static void unravel(Shape s, int64_t i, int64_t *at) {
    for (int k = s.rank - 1; k >= 0; k--) {
        at[k] = i % s.dim[k];
        i /= s.dim[k];
    }
}

static int64_t ravel(Shape s, const int64_t *at) {
    int64_t i = 0;
    for (int k = 0; k < s.rank; k++) i = i * s.dim[k] + at[k];
    return i;
}

/* The slice's element i is whole's element at start + j*step along each axis, where j
 * counts the slice's own elements (0 along a dropped axis). */
static double ref_slice(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Layout *l = v->layout;
    int64_t j[MAX_RANK], at[MAX_RANK];
    unravel(v->shape, i, j);
    for (int k = 0, kept = 0; k < l->whole.rank; k++)
        at[k] = l->start[k] + (l->drop[k] ? 0 : j[kept++]) * l->step[k];
    return ref_eval(m, v->args[0], s, ravel(l->whole, at));
}

/* whole's element i: the slice's element that went there, or 0. */
static double ref_scatter(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Layout *l = v->layout;
    int64_t at[MAX_RANK], packed[MAX_RANK];
    Shape box = l->whole;
    unravel(l->whole, i, at);
    for (int k = 0; k < l->whole.rank; k++) {
        int64_t offset = at[k] - l->start[k];
        if (offset < 0 || offset % l->step[k] || offset / l->step[k] >= l->count[k]) return 0;
        packed[k] = offset / l->step[k];
        box.dim[k] = l->count[k];
    }
    return ref_eval(m, v->args[0], s, ravel(box, packed));
}

/* Axis k of the result is axis perm[k] of the operand. */
static double ref_permute(const Model *m, const Value *v, int64_t s, int64_t i) {
    int perm[MAX_RANK];
    int64_t at[MAX_RANK], from[MAX_RANK];
    ir_permutation(v, perm);
    unravel(v->shape, i, at);
    for (int k = 0; k < v->shape.rank; k++) from[perm[k]] = at[k];
    return ref_eval(m, v->args[0], s, ravel(v->args[0]->shape, from));
}
#define ref_transpose ref_permute

static double ref_concat(const Model *m, const Value *v, int64_t s, int64_t i) {
    int axis = 0;
    ir_axis(v->opt[0], v->shape.rank, &axis);
    int64_t at[MAX_RANK], first = v->args[0]->shape.dim[axis];
    unravel(v->shape, i, at);
    const Value *from = at[axis] < first ? v->args[0] : v->args[1];
    if (at[axis] >= first) at[axis] -= first;
    return ref_eval(m, from, s, ravel(from->shape, at));
}

static double ref_batch_mean(const Model *m, const Value *v, int64_t s, int64_t i) {
    return ref_batch_sum(m, v, s, i) / ((double)m->ctx.batch - v->opt[0]);
}

typedef double RefFn(const Model *m, const Value *v, int64_t sample, int64_t i);

#define REF_SRC(name)
#define REF_EW(name)
#define REF_REDUCE(name) [OP_##name] = ref_##name,
#define REF_ROW(name)    [OP_##name] = ref_##name,
#define REF_LAYOUT(name) [OP_##name] = ref_##name,
#define REF_MATMUL(name)
#define REF_WINDOW(name) [OP_##name] = ref_##name,
static RefFn *const per_op[OP_COUNT] = {
#define OP(name, arity, class, ...) REF_##class(name)
#include "ops.def"
#undef OP
};

/* op(X)[row][k] of a matmul operand at sample s. */
static double matrix_at(const Model *m, const Value *x, bool t, int64_t s, int64_t row,
                        int64_t col) {
    int64_t cols = x->shape.dim[x->shape.rank - 1];
    return t ? ref_eval(m, x, s, col * cols + row) : ref_eval(m, x, s, row * cols + col);
}

static double matmul(const Model *m, const Value *v, int64_t s, int64_t i) {
    int64_t M, N, K;
    ir_matmul_dims(v, &M, &N, &K);
    int64_t first = v->sum_batch ? 0 : s, last = v->sum_batch ? m->ctx.batch : s + 1;
    double sum = 0;
    for (int64_t b = first; b < last; b++)
        for (int64_t k = 0; k < K; k++)
            sum += matrix_at(m, v->args[0], v->ta, b, i / N, k) *
                   matrix_at(m, v->args[1], v->tb, b, k, i % N);
    return sum;
}

/* An elementwise op: its scalar semantics in ops.def; a RANDOM op (dropout) multiplies its
 * operand by its mask's factor; a MODE op (training(a, b)) is a while training, else b. */
static double elementwise(const Model *m, const Value *v, int64_t s, int64_t i) {
    double x[3] = {0, 0, 0};
    for (int k = 0; k < v->nargs; k++)
        x[k] = ref_eval(m, v->args[k], s, broadcast_index(v->shape, v->args[k]->shape, i));
    if (op_info[v->op].flags & OPF_RANDOM) return x[0] * ref_dropout_factor(m, v, s, i);
    if (op_info[v->op].flags & OPF_MODE) return m->ctx.training ? x[0] : x[1];
    if (!op_info[v->op].scalar) {
        fprintf(stderr, "reference: %s has no scalar semantics in ops.def\n", op_info[v->op].name);
        abort();
    }
    return op_info[v->op].scalar(x, v->opt);
}

double ref_eval(const Model *m, const Value *v, int64_t s, int64_t i) {
    switch (op_info[v->op].cls) {
    case OPC_SRC: return leaf(m, v, s, i);
    case OPC_EW: return elementwise(m, v, s, i);
    case OPC_REDUCE:
    case OPC_ROW:
    case OPC_LAYOUT: return per_op[v->op](m, v, s, i);
    case OPC_WINDOW: return per_op[v->op](m, v, s, i);
    case OPC_MATMUL: return matmul(m, v, s, i);
    }
    abort();
}

bool check_value(const char *label, const Model *m, const Value *v, const nnrt_tensor *t,
                 double tol) {
    int64_t samples = t->varying ? m->ctx.batch : 1;
    bool ok = check(t->numel == shape_numel(v->shape), "%s: numel %lld, want %lld", label,
                    (long long)t->numel, (long long)shape_numel(v->shape));
    for (int64_t b = 0; ok && b < samples; b++)
        for (int64_t i = 0; ok && i < t->numel; i++)
            ok = check_close(xprintf("%s[%lld][%lld]", label, (long long)b, (long long)i),
                             tensor_get(m, t, b, i), ref_eval(m, v, b, i), tol);
    return ok;
}

void fill_leaves(Model *m, double lo, double hi) {
    const nnrt_model *d = m->desc;
    for (int i = 0; i < d->n_inputs; i++) tensor_fill_random(m, &d->inputs[i], lo, hi);
    for (int i = 0; i < d->n_targets; i++) tensor_fill_random(m, &d->targets[i], lo, hi);
    for (int i = 0; i < d->n_params; i++) tensor_fill_random(m, &d->params[i], lo, hi);
}

bool check_forward(const char *label, Graph *g, Value *result, const ForwardCase *fc) {
    g->name = label;
    g->output = result;
    g->loss = result->shape.rank == 0 ? result : ir_build1(g, OP_sum, result);
    int64_t batch = fc->batch ? fc->batch : 5;
    Model *m = model_compile(g, fc->f64, fc->opt_level, batch + 3);
    if (!m) return false;
    m->ctx.batch = batch; /* fewer than batch_cap: offsets must scale by the capacity */
    fill_leaves(m, fc->lo, fc->hi);
    if (fc->tweak) fc->tweak(m);
    double tol = fc->f64 ? 1e-10 : fc->tol ? fc->tol : 2e-5;
    m->desc->forward(&m->ctx);
    bool ok = check_value(xprintf("%s output", label), m, result, &m->desc->output, tol) &&
              check_value(xprintf("%s loss", label), m, g->loss, &m->desc->loss,
                          tol * (double)shape_numel(result->shape));
    /* predict must write the output by itself. */
    int64_t samples = m->desc->output.varying ? m->ctx.batch : 1;
    for (int64_t b = 0; b < samples; b++)
        for (int64_t i = 0; i < m->desc->output.numel; i++)
            tensor_set(m, &m->desc->output, b, i, 1e30);
    m->desc->predict(&m->ctx);
    ok = ok && check_value(xprintf("%s predict", label), m, result, &m->desc->output, tol);
    model_close(m);
    return ok;
}
