/* test_matmul.c: every way a per-sample matrix product meets the batch, each compared with
 * the reference: one GEMM over the stacked rows (x W), one GEMM over the stacked inner
 * dimension (X^T dY, summed over the batch), one GEMM without batch, and a loop of GEMMs. */
#include "harness.h"

#include <math.h>

typedef struct Case {
    const char *what;
    bool a_varies, b_varies;
    Shape a, b;
    bool ta, tb, sum_batch;
} Case;

static Value *operand(Graph *g, const char *name, bool varies, Shape s) {
    return varies ? add_input(g, name, s) : add_param(g, name, s);
}

static const Case cases[] = {
    /* the batch as extra rows of A: one GEMM */
    {"x[4] W[4,3]", true, false, {1, {4}}, {2, {4, 3}}, false, false, false},
    {"X[2,4] W[4,3]", true, false, {2, {2, 4}}, {2, {4, 3}}, false, false, false},
    {"dy[3] W[4,3]^T", true, false, {1, {3}}, {2, {4, 3}}, false, true, false},
    {"x[4] w[4]^T (a dot)", true, false, {1, {4}}, {1, {4}}, false, true, false},
    /* the batch as extra inner dimension: one GEMM summing over samples */
    {"x[4]^T dy[3], summed", true, true, {1, {4}}, {1, {3}}, true, false, true},
    {"X[2,4]^T dY[2,3], summed", true, true, {2, {2, 4}}, {2, {2, 3}}, true, false, true},
    /* nothing varies */
    {"P[2,3] Q[3,4]", false, false, {2, {2, 3}}, {2, {3, 4}}, false, false, false},
    {"P[3,2]^T Q[4,3]^T", false, false, {2, {3, 2}}, {2, {4, 3}}, true, true, false},
    /* a GEMM per sample */
    {"W[3,4] x[4]^T", false, true, {2, {3, 4}}, {1, {4}}, false, true, false},
    {"X[2,4] Y[4,3]", true, true, {2, {2, 4}}, {2, {4, 3}}, false, false, false},
    {"X[4,2]^T W[4,3]", true, false, {2, {4, 2}}, {2, {4, 3}}, true, false, false},
    {"x[4] W[4,3], summed", true, false, {1, {4}}, {2, {4, 3}}, false, false, true},
    {"W[4,3]^T x[4]^T... as P^T y, summed", false, true, {2, {4, 3}}, {1, {4}}, true, true, true},
    {"X[2,4] Y[3,4]^T, summed", true, true, {2, {2, 4}}, {2, {3, 4}}, false, true, true},
};

/* Image-like data: columns of x that are zero in every sample (-0 in some), one of them NaN
 * in the first sample, so that X^T dY skips whole rows (runtime/in_place_gemm.h). */
static void zero_columns(Model *m) {
    const nnrt_tensor *t = model_tensor(m, "a");
    for (int64_t b = 0; b < m->ctx.batch_cap; b++)
        for (int64_t i = 0; i < t->numel; i++)
            if (i % 3 == 1 || i < 9) tensor_set(m, t, b, i, b % 2 ? -0.0 : 0.0);
    tensor_set(m, t, 0, 4, NAN);
}

/* The weight gradient of a first layer, X^T dY with X the data (or the data scaled, x / 4),
 * at a size where the AVX-512 kernel runs it (N = 64 columns: two tiles), with and without
 * zero columns. */
static void data_weight_gradient(void) {
    for (int scaled = 0; scaled < 2; scaled++)
        for (int zeros = 0; zeros < 2; zeros++) {
            Graph *g = graph_new("matmul");
            Value *a = operand(g, "a", true, (Shape){1, {40}});
            Value *b = operand(g, "b", true, (Shape){1, {64}});
            if (scaled) a = ir_build2(g, OP_div, a, ir_const(g, 4));
            Value *r = ir_matmul(g, a, b, true, false, true);
            ForwardCase fc = {.f64 = false, .opt_level = 2, .lo = -1, .hi = 1};
            if (zeros) fc.tweak = zero_columns;
            check_forward(xprintf("%s^T dy[64], summed, %s", scaled ? "(x[40] / 4)" : "x[40]",
                                  zeros ? "zero columns" : "dense"),
                          g, r, &fc);
        }
}

/* Products of at most 64 multiply-adds a sample and 512 over the batch are loops of the
 * compiled code, not BLAS calls (codegen.c, "products too small for a BLAS call"): each
 * case at both sides of both limits (64 a sample: 8 samples loops, 9 BLAS), and with NaN,
 * inf and -0 in its operands. */
static const Case limit_cases[] = {
    {"x[8] W[8,8]: 64 a sample", true, false, {1, {8}}, {2, {8, 8}}, false, false, false},
    {"x[5] W[5,13]: 65 a sample", true, false, {1, {5}}, {2, {5, 13}}, false, false, false},
    {"dy[8] W[8,8]^T: 64", true, false, {1, {8}}, {2, {8, 8}}, false, true, false},
    {"x[8]^T dy[8], summed: 64", true, true, {1, {8}}, {1, {8}}, true, false, true},
    {"x[5]^T dy[13], summed: 65", true, true, {1, {5}}, {1, {13}}, true, false, true},
    {"P[8,8] Q[8,1]: 64", false, false, {2, {8, 8}}, {2, {8, 1}}, false, false, false},
};

/* NaN, inf and -0 in the first operand's first samples (and all of it when nothing varies). */
static void special_values(Model *m) {
    const nnrt_tensor *t = model_tensor(m, "a");
    int64_t samples = t->varying ? m->ctx.batch : 1;
    const double specials[] = {NAN, INFINITY, -0.0, -INFINITY};
    for (int64_t s = 0; s < samples && s < 4; s++) tensor_set(m, t, s, s % t->numel, specials[s]);
}

static void check_case(const Case *c, bool f64, int64_t batch, void (*tweak)(Model *)) {
    Graph *g = graph_new("matmul");
    Value *a = operand(g, "a", c->a_varies, c->a);
    Value *b = operand(g, "b", c->b_varies, c->b);
    Value *r = ir_matmul(g, a, b, c->ta, c->tb, c->sum_batch);
    ForwardCase fc = {
        .f64 = f64, .opt_level = 2, .lo = -1, .hi = 1, .tweak = tweak, .batch = batch};
    check_forward(xprintf("%s (%s, batch %lld%s)", c->what, f64 ? "f64" : "f32", (long long)batch,
                          tweak ? ", NaN, inf, -0" : ""),
                  g, r, &fc);
}

int main(void) {
    data_weight_gradient();
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            check_case(&cases[k], mode, 5, NULL);
            check_case(&cases[k], mode, 70, NULL); /* past the loops' 512 multiply-adds */
        }
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < sizeof limit_cases / sizeof limit_cases[0]; k++)
            for (int64_t batch = 7; batch <= 9; batch++) {
                check_case(&limit_cases[k], mode, batch, NULL);
                check_case(&limit_cases[k], mode, batch, special_values);
            }
    return test_summary("test_matmul");
}
