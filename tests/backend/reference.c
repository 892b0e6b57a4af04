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

/* Element i of a reduction to out elements: the sum of u's elements i, i + out, ... */
static double sum_down(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *u = v->args[0];
    int64_t n = shape_numel(u->shape), out = shape_numel(v->shape);
    double sum = 0;
    for (int64_t j = i; j < n; j += out) sum += ref_eval(m, u, s, j);
    return sum;
}
#define ref_sum    sum_down
#define ref_sum_to sum_down

static double ref_mean(const Model *m, const Value *v, int64_t s, int64_t i) {
    return sum_down(m, v, s, i) / (double)shape_numel(v->args[0]->shape);
}

static double ref_batch_sum(const Model *m, const Value *v, int64_t s, int64_t i) {
    (void)s;
    double sum = 0;
    for (int64_t b = 0; b < m->ctx.batch; b++) sum += ref_eval(m, v->args[0], b, i);
    return sum;
}

static double ref_batch_mean(const Model *m, const Value *v, int64_t s, int64_t i) {
    return ref_batch_sum(m, v, s, i) / ((double)m->ctx.batch - v->opt[0]);
}

typedef double RefFn(const Model *m, const Value *v, int64_t sample, int64_t i);

#define REF_SRC(name)
#define REF_EW(name)
#define REF_REDUCE(name) [OP_##name] = ref_##name,
#define REF_ROW(name)    [OP_##name] = ref_##name,
#define REF_MATMUL(name)
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
        x[k] = ref_eval(m, v->args[k], s, i % shape_numel(v->args[k]->shape));
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
    case OPC_ROW: return per_op[v->op](m, v, s, i);
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
    Model *m = model_compile(g, fc->f64, fc->opt_level, 8);
    if (!m) return false;
    m->ctx.batch = 5; /* fewer than batch_cap: offsets must scale by the capacity */
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
