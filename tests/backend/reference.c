/* reference.c: the IR evaluated element by element in double precision, written straight
 * from the semantics in ops.def and nothing else of the back end: what the tests compare
 * the compiled code with. Slow (it recomputes shared values) but plain. */
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

/* NaN stays NaN through relu, leaky_relu, elu, step and sign (ops.def). */
static double sign_of(double x) {
    return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
}

static double softplus(double x) {
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}

static double elementwise(const Value *v, double a, double b, double c) {
    switch (v->op) {
    case OP_add: return a + b;
    case OP_sub: return a - b;
    case OP_mul: return a * b;
    case OP_div: return a / b;
    case OP_pow: return pow(a, b);
    case OP_neg: return -a;
    case OP_exp: return exp(a);
    case OP_log: return log(a);
    case OP_sqrt: return sqrt(a);
    case OP_abs: return fabs(a);
    case OP_sin: return sin(a);
    case OP_cos: return cos(a);
    case OP_tanh: return tanh(a);
    case OP_sigmoid: return 1 / (1 + exp(-a));
    case OP_relu: return a <= 0 ? 0 : a;
    case OP_leaky_relu: return a <= 0 ? v->opt[0] * a : a;
    case OP_elu: return a <= 0 ? v->opt[0] * expm1(a) : a;
    case OP_softplus: return softplus(a);
    case OP_sign: return sign_of(a);
    case OP_step: return isnan(a) ? a : a > 0 ? 1 : 0;
    case OP_broadcast: return a;
    case OP_where: return a <= 0 ? c : b;
    default: abort();
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

static double row_op(const Model *m, const Value *v, int64_t s, int64_t i) {
    const Value *z = v->args[0];
    int64_t C = z->shape.dim[z->shape.rank - 1], r = i / C, c = i % C;
    double *row = malloc((size_t)C * sizeof *row), result = 0;
    switch (v->op) {
    case OP_softmax: result = exp(ref_eval(m, z, s, i) - load_row(m, z, s, r, C, row)); break;
    case OP_log_softmax: result = ref_eval(m, z, s, i) - load_row(m, z, s, r, C, row); break;
    case OP_softmax_ce:
        for (int64_t rr = 0; rr < shape_numel(z->shape) / C; rr++) {
            double lse = load_row(m, z, s, rr, C, row);
            for (int64_t k = 0; k < C; k++)
                result -= ref_eval(m, v->args[1], s, rr * C + k) * (row[k] - lse);
        }
        break;
    case OP_softmax_grad: {
        double dot = 0;
        for (int64_t k = 0; k < C; k++)
            dot += ref_eval(m, v->args[1], s, r * C + k) * ref_eval(m, z, s, r * C + k);
        result = ref_eval(m, z, s, i) * (ref_eval(m, v->args[1], s, i) - dot);
        break;
    }
    case OP_log_softmax_grad: {
        double total = 0;
        for (int64_t k = 0; k < C; k++) total += ref_eval(m, v->args[1], s, r * C + k);
        result = ref_eval(m, v->args[1], s, i) - exp(ref_eval(m, z, s, i)) * total;
        break;
    }
    case OP_softmax_ce_grad: {
        double lse = load_row(m, z, s, r, C, row), ysum = 0;
        for (int64_t k = 0; k < C; k++) ysum += ref_eval(m, v->args[1], s, r * C + k);
        double p = exp(row[c] - lse);
        result = ref_eval(m, v->args[2], s, 0) * (p * ysum - ref_eval(m, v->args[1], s, i));
        break;
    }
    default: abort();
    }
    free(row);
    return result;
}

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

double ref_eval(const Model *m, const Value *v, int64_t s, int64_t i) {
    switch (op_info[v->op].cls) {
    case OPC_SRC: return leaf(m, v, s, i);
    case OPC_EW: {
        double x[3] = {0, 0, 0};
        for (int k = 0; k < v->nargs; k++)
            x[k] = ref_eval(m, v->args[k], s, i % shape_numel(v->args[k]->shape));
        if (v->op == OP_dropout) return x[0] * ref_dropout_factor(m, v, s, i);
        return elementwise(v, x[0], x[1], x[2]);
    }
    case OPC_REDUCE: {
        const Value *u = v->args[0];
        int64_t n = shape_numel(u->shape), out = shape_numel(v->shape);
        double sum = 0;
        if (v->op == OP_batch_sum) {
            for (int64_t b = 0; b < m->ctx.batch; b++) sum += ref_eval(m, u, b, i);
            return sum;
        }
        for (int64_t j = i; j < n; j += out) sum += ref_eval(m, u, s, j);
        return v->op == OP_mean ? sum / (double)n : sum;
    }
    case OPC_ROW: return row_op(m, v, s, i);
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
