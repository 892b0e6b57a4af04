/* test_special.c: every op and stdlib function at its special points, forward value and
 * gradient, in f32 and f64, through the compiled code.
 *
 * Random points (tests/gradcheck, tests/backend) never land on the places where the bugs
 * were: an input of exactly 0, a branch boundary, the range where exp overflows in f32
 * (|x| > 88.7), huge inputs (±1e30), NaN. Each case below is a tiny model written in .nn,
 * `loss = EXPR` over params a (and b), compiled by the real front end, autodiff and back
 * end; its loss and d loss/d a, d loss/d b are compared at every point with a reference
 * written here from the mathematics in double precision (libm's expm1, log1p), rounded
 * to f32 for the f32 build. What "right" means at the special points:
 *
 *   - a value or gradient that is finite in exact arithmetic is finite, to a relative
 *     1e-5 (f32) or 1e-12 (f64); it may be 0 where the exact one is below f32's range.
 *     Where the formula PyTorch also uses subtracts two numbers near 1 (sigmoid's s(1 - s),
 *     tanh's 1 - t^2, the 1e-7 that keeps bce's log finite), the case allows an absolute
 *     error of a few epsilons of the type, and says so;
 *   - a branch not taken contributes exactly 0, never 0 * inf = NaN (sqrt(relu(a)) for
 *     a < 0, a^b at a = 0, elu's overflowed exp at a > 88.7);
 *   - at a kink the derivative is PyTorch's one-sided choice: relu'(0) = 0, |a|'(0) = 0,
 *     leaky_relu'(0) = alpha, elu'(0) = alpha;
 *   - inf and NaN where exact arithmetic gives them (log(0) = -inf, sqrt(-1) = NaN);
 *   - a NaN input gives a NaN value (relu(NaN) is NaN, as in PyTorch); the gradient at a
 *     NaN point is not checked;
 *   - at a tie of max or min along an axis the tied elements share the gradient evenly. */
#include "harness.h"
#include "stages.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_MAX 3 /* the longest vector a case uses */

/* The reference: the value at (a, b) and its partial derivatives. */
typedef struct Exact {
    double value, da[N_MAX], db[N_MAX];
} Exact;

typedef Exact RefFn(const double *a, const double *b, int n, double k, double k2);

typedef struct Case {
    const char *expr; /* the loss, over params a and b */
    RefFn *ref;
    double k, k2;    /* constants the expression and the reference share (alpha, exponent) */
    int n;           /* 0: a and b are scalars; else vectors of n */
    bool uses_b;     /* b is a param of the model */
    const char *pts; /* points: any, pair, tie, clamp, pow, logit, prob, vec, extreme */
    double eps;      /* absolute error allowed, in epsilons of the type (see the top) */
    bool input;      /* the model has an input x[1], 1 in every sample (what dropout needs) */
} Case;

/* ---- references ---- */

static double sigmoid(double x) {
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}
static double softplus(double x) {
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}
static double sign(double x) {
    return isnan(x) ? x : (x > 0) - (x < 0);
}
static double step(double x) {
    return isnan(x) ? x : x > 0;
}

static Exact unary(double value, double da) {
    return (Exact){.value = value, .da = {da}};
}
static Exact binary(double value, double da, double db) {
    return (Exact){.value = value, .da = {da}, .db = {db}};
}

/* clang-format off: one line a reference reads as a table */
#define REF(name) \
    static Exact ref_##name(const double *pa, const double *pb, int n, double k, double k2)
#define SCALARS   double a = pa[0], b = pb[0]; (void)a, (void)b, (void)n, (void)k, (void)k2

REF(neg) { SCALARS; return unary(-a, -1); }
REF(exp) { SCALARS; return unary(exp(a), exp(a)); }
REF(log) { SCALARS; return unary(log(a), 1 / a); }
REF(sqrt) { SCALARS; return unary(sqrt(a), 0.5 / sqrt(a)); }
REF(abs) { SCALARS; return unary(fabs(a), sign(a)); }
REF(sin) { SCALARS; return unary(sin(a), cos(a)); }
REF(cos) { SCALARS; return unary(cos(a), -sin(a)); }
REF(tanh) { SCALARS; return unary(tanh(a), 1 / (cosh(a) * cosh(a))); }
REF(sigmoid) { SCALARS; return unary(sigmoid(a), sigmoid(a) * sigmoid(-a)); }
REF(relu) { SCALARS; return unary(a <= 0 ? 0 : a, a > 0); }
REF(leaky_relu) { SCALARS; return unary(a <= 0 ? k * a : a, a > 0 ? 1 : k); }
REF(elu) { SCALARS; return unary(a <= 0 ? k * expm1(a) : a, a > 0 ? 1 : k * exp(a)); }
REF(softplus) { SCALARS; return unary(softplus(a), sigmoid(a)); }
REF(sign) { SCALARS; return unary(sign(a), 0); }
REF(step) { SCALARS; return unary(step(a), 0); }
/* torch.maximum and torch.minimum: NaN if either is; at a tie each operand gets half. */
static double larger(double a, double b) { return a > b ? 1 : a == b ? 0.5 : 0; }
REF(max) { SCALARS; return binary(isnan(a) || isnan(b) ? NAN : fmax(a, b), larger(a, b), larger(b, a)); }
REF(min) { SCALARS; return binary(isnan(a) || isnan(b) ? NAN : fmin(a, b), larger(b, a), larger(a, b)); }
REF(max_0) { SCALARS; return unary(isnan(a) ? a : fmax(a, 0), larger(a, 0)); }
/* torch.clamp(a, k, k2): k2 where k > k2; the bounds pass the gradient. */
REF(clamp) { SCALARS; return unary(isnan(a) ? a : fmin(fmax(a, k), k2), a >= k && a <= k2); }
REF(add) { SCALARS; return binary(a + b, 1, 1); }
REF(sub) { SCALARS; return binary(a - b, 1, -1); }
REF(mul) { SCALARS; return binary(a * b, b, a); }
REF(div) { SCALARS; return binary(a / b, 1 / b, -a / (b * b)); }
/* d/da is exactly 0 where b = 0, d/db exactly 0 where a = 0 (autodiff.c, grad_pow). */
REF(pow) { SCALARS; return binary(pow(a, b), b == 0 ? 0 : b * pow(a, b - 1), a == 0 ? 0 : pow(a, b) * log(a)); }
REF(pow_const) { SCALARS; return unary(pow(a, k), k == 0 ? 0 : k * pow(a, k - 1)); }
REF(sqrt_relu) { SCALARS; return unary(sqrt(a <= 0 ? 0 : a), a > 0 ? 0.5 / sqrt(a) : 0); }
REF(swish) { SCALARS; return unary(a * sigmoid(a), sigmoid(a) + a * sigmoid(a) * sigmoid(-a)); }
REF(mse) { SCALARS; return binary((a - b) * (a - b), 2 * (a - b), -2 * (a - b)); }
REF(mae) { SCALARS; return binary(fabs(a - b), sign(a - b), -sign(a - b)); }
REF(bce_logits) {
    SCALARS;
    return binary((1 - b) * softplus(a) + b * softplus(-a), (1 - b) * sigmoid(a) - b * sigmoid(-a),
                  -a);
}
REF(bce) {
    SCALARS;
    double p = a + 1e-7, q = 1 - a + 1e-7;
    return binary(-(b * log(p) + (1 - b) * log(q)), -(b / p - (1 - b) / q), -(log(p) - log(q)));
}
REF(cross_entropy) { SCALARS; return binary(-b * log(a + 1e-7), -b / (a + 1e-7), -log(a + 1e-7)); }
/* Outside training (the harness's nnrt_ctx.training is 0) dropout is the identity, bit for
 * bit, NaN and inf included. */
REF(dropout) { SCALARS; return unary(a, 1); }
/* The harness's passes are not training: training(a, b) is b; the backward pass is the
 * training behaviour's, a's. */
REF(training) { SCALARS; return binary(b, 1, 0); }
/* One sample (the harness's batch): the batch's mean of a is a. */
REF(batch_mean) { SCALARS; return unary(a, 1); }
/* clang-format on */

/* mean(a) */
REF(mean) {
    (void)pb, (void)k, (void)k2;
    Exact r = {0};
    for (int i = 0; i < n; i++) r.value += pa[i] / n, r.da[i] = 1.0 / n;
    return r;
}

/* max(a, axis = 0) (sign 1) or min (sign -1): NaN if an element is; the elements equal to
 * it share the gradient evenly (torch.amax, torch.amin), ±inf ties included. */
static Exact extreme(const double *pa, int n, double sign) {
    Exact r = {.value = -INFINITY * sign};
    int ties = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(pa[i])) return (Exact){.value = NAN};
        if (pa[i] * sign > r.value * sign) r.value = pa[i];
    }
    for (int i = 0; i < n; i++) ties += pa[i] == r.value;
    for (int i = 0; i < n; i++) r.da[i] = pa[i] == r.value ? 1.0 / ties : 0;
    return r;
}
REF(max_axis) {
    (void)pb, (void)k, (void)k2;
    return extreme(pa, n, 1);
}
REF(min_axis) {
    (void)pb, (void)k, (void)k2;
    return extreme(pa, n, -1);
}
/* sum(a * b, axis = 0) */
REF(sum_axis) {
    (void)k, (void)k2;
    Exact r = {0};
    for (int i = 0; i < n; i++) r.value += pa[i] * pb[i], r.da[i] = pb[i], r.db[i] = pa[i];
    return r;
}

/* log_softmax(z) as (z - max) - log(sum e^(z - max)). */
static void log_softmax(const double *z, int n, double *out) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += exp(z[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (z[i] - mx) - log(s);
}

/* sum(softmax(a) * b) */
REF(softmax) {
    (void)k, (void)k2;
    Exact r = {0};
    double l[N_MAX], s[N_MAX], sb = 0;
    log_softmax(pa, n, l);
    for (int i = 0; i < n; i++) s[i] = exp(l[i]), sb += s[i] * pb[i];
    for (int i = 0; i < n; i++) {
        r.value += s[i] * pb[i];
        r.da[i] = s[i] * (pb[i] - sb);
        r.db[i] = s[i];
    }
    return r;
}
/* sum(log_softmax(a) * b) */
REF(log_softmax) {
    (void)k, (void)k2;
    Exact r = {0};
    double l[N_MAX], sum_b = 0;
    log_softmax(pa, n, l);
    for (int i = 0; i < n; i++) sum_b += pb[i];
    for (int i = 0; i < n; i++) {
        r.value += l[i] * pb[i];
        r.da[i] = pb[i] - exp(l[i]) * sum_b;
        r.db[i] = l[i];
    }
    return r;
}
/* softmax_cross_entropy(a, b) = -sum(b * log_softmax(a)) */
REF(softmax_ce) {
    Exact r = ref_log_softmax(pa, pb, n, k, k2);
    r.value = -r.value;
    for (int i = 0; i < n; i++) r.da[i] = -r.da[i], r.db[i] = -r.db[i];
    return r;
}

/* clang-format off: a case a line */
static const Case cases[] = {
    {.expr = "-a", .ref = ref_neg, .pts = "any"},
    {.expr = "exp(a)", .ref = ref_exp, .pts = "any"},
    {.expr = "log(a)", .ref = ref_log, .pts = "any"},
    {.expr = "sqrt(a)", .ref = ref_sqrt, .pts = "any"},
    {.expr = "abs(a)", .ref = ref_abs, .pts = "any"},
    {.expr = "sin(a)", .ref = ref_sin, .pts = "any"},
    {.expr = "cos(a)", .ref = ref_cos, .pts = "any"},
    {.expr = "tanh(a)", .ref = ref_tanh, .pts = "any", .eps = 1},
    {.expr = "sigmoid(a)", .ref = ref_sigmoid, .pts = "any", .eps = 1},
    {.expr = "relu(a)", .ref = ref_relu, .pts = "any"},
    {.expr = "leaky_relu(a)", .ref = ref_leaky_relu, .k = 0.01, .pts = "any"},
    {.expr = "leaky_relu(a, alpha = 0.2)", .ref = ref_leaky_relu, .k = 0.2, .pts = "any"},
    {.expr = "elu(a)", .ref = ref_elu, .k = 1, .pts = "any"},
    {.expr = "elu(a, alpha = 0.5)", .ref = ref_elu, .k = 0.5, .pts = "any"},
    {.expr = "softplus(a)", .ref = ref_softplus, .pts = "any"},
    {.expr = "sign(a)", .ref = ref_sign, .pts = "any"},
    {.expr = "step(a)", .ref = ref_step, .pts = "any"},
    {.expr = "a + b", .ref = ref_add, .uses_b = true, .pts = "pair"},
    {.expr = "a - b", .ref = ref_sub, .uses_b = true, .pts = "pair"},
    {.expr = "a * b", .ref = ref_mul, .uses_b = true, .pts = "pair"},
    {.expr = "a / b", .ref = ref_div, .uses_b = true, .pts = "pair"},
    {.expr = "a ^ b", .ref = ref_pow, .uses_b = true, .pts = "pow"},
    {.expr = "max(a, b)", .ref = ref_max, .uses_b = true, .pts = "pair"},
    {.expr = "max(a, b)", .ref = ref_max, .uses_b = true, .pts = "tie"},
    {.expr = "min(a, b)", .ref = ref_min, .uses_b = true, .pts = "pair"},
    {.expr = "min(a, b)", .ref = ref_min, .uses_b = true, .pts = "tie"},
    {.expr = "max(a, 0)", .ref = ref_max_0, .pts = "any"},
    {.expr = "clamp(a, -1, 1)", .ref = ref_clamp, .k = -1, .k2 = 1, .pts = "clamp"},
    {.expr = "clamp(a, lo = 0)", .ref = ref_clamp, .k2 = INFINITY, .pts = "clamp"},
    {.expr = "clamp(a, hi = 0)", .ref = ref_clamp, .k = -INFINITY, .pts = "clamp"},
    {.expr = "clamp(a, -1/0, 1/0)", .ref = ref_clamp, .k = -INFINITY, .k2 = INFINITY,
     .pts = "clamp"},
    {.expr = "clamp(a, 1, -1)", .ref = ref_clamp, .k = 1, .k2 = -1, .pts = "clamp"},
    {.expr = "a ^ 0", .ref = ref_pow_const, .pts = "any"},
    {.expr = "a ^ 0.5", .ref = ref_pow_const, .k = 0.5, .pts = "any"},
    {.expr = "a ^ 2", .ref = ref_pow_const, .k = 2, .pts = "any"},
    {.expr = "a ^ 3", .ref = ref_pow_const, .k = 3, .pts = "any"},
    {.expr = "a ^ -1", .ref = ref_pow_const, .k = -1, .pts = "any"},
    {.expr = "sqrt(relu(a))", .ref = ref_sqrt_relu, .pts = "any"},
    {.expr = "swish(a)", .ref = ref_swish, .pts = "any", .eps = 4},
    {.expr = "mse(a, b)", .ref = ref_mse, .uses_b = true, .pts = "pair"},
    {.expr = "mae(a, b)", .ref = ref_mae, .uses_b = true, .pts = "pair"},
    {.expr = "bce_logits(a, b)", .ref = ref_bce_logits, .uses_b = true, .pts = "logit", .eps = 2},
    {.expr = "bce(a, b)", .ref = ref_bce, .uses_b = true, .pts = "prob", .eps = 2},
    {.expr = "cross_entropy(a, b)", .ref = ref_cross_entropy, .uses_b = true, .pts = "prob",
     .eps = 2},
    {.expr = "sum(softmax(a) * b)", .ref = ref_softmax, .n = 3, .uses_b = true, .pts = "vec"},
    {.expr = "sum(log_softmax(a) * b)", .ref = ref_log_softmax, .n = 3, .uses_b = true,
     .pts = "vec"},
    {.expr = "softmax_cross_entropy(a, b)", .ref = ref_softmax_ce, .n = 3, .uses_b = true,
     .pts = "vec"},
    {.expr = "mean(a)", .ref = ref_mean, .n = 3, .pts = "vec"},
    {.expr = "mean(a, axis = -1)", .ref = ref_mean, .n = 3, .pts = "vec"},
    {.expr = "sum(a * b, axis = 0)", .ref = ref_sum_axis, .n = 3, .uses_b = true, .pts = "vec"},
    {.expr = "max(a, axis = 0)", .ref = ref_max_axis, .n = 3, .pts = "extreme"},
    {.expr = "sum(min(a, axis = -1, keepdim = 1))", .ref = ref_min_axis, .n = 3,
     .pts = "extreme"},
    {.expr = "sum(dropout(a * x))", .ref = ref_dropout, .pts = "any", .input = true},
    {.expr = "sum(dropout(a * x, rate = 0.9))", .ref = ref_dropout, .pts = "any",
     .input = true},
    {.expr = "training(a, b)", .ref = ref_training, .uses_b = true, .pts = "pair"},
    {.expr = "sum(batch_mean(a * x))", .ref = ref_batch_mean, .pts = "any", .input = true},
};
/* clang-format on */

/* ---- points ---- */

/* 0, both sides of 0, the ends of tanh's series (0.1, 0.3), where exp overflows in f32
 * (88.72) and in f64 (709.78), and the far range. */
static const double any_points[] = {
    0,   1e-30, -1e-30, 1e-8, -1e-8, 0.1, -0.1, 0.3, -0.3, 0.5, -0.5, 1,    -1,    20,
    -20, 88.7,  -88.7,  89,   -89,   100, -100, 709, -709, 710, -710, 1e30, -1e30, NAN,
};
static const double f64_only_points[] = {1e300, -1e300};
static const double pair_a[] = {0, 1, -1, 2.5, 1e30, -1e30, 100};
static const double pair_b[] = {0, 1, -3, 0.5, 1e30, 1e-30};
static const double pow_a[] = {0, 0.5, 1, 2, -2, 100, 1e30};
static const double pow_b[] = {0, 0.5, 1, 2, 3, -1, -0.5, 50};
/* Ties, ±inf among them; a NaN against each. */
static const double tie_points[] = {-INFINITY, -1e30, -1, 0, 1, 1e30, INFINITY, NAN};
/* clamp's bounds (±1, 0), both sides of each, and ±inf. */
static const double clamp_points[] = {-INFINITY, -1e30, -2, -1, -0.5, 0,
                                      0.5,       1,     2,  1e30, INFINITY, NAN};
static const double logit_b[] = {0, 0.5, 1};
static const double prob_a[] = {0, 1e-30, 0.25, 0.5, 0.75, 1};
static const double prob_b[] = {0, 0.5, 1};
static const double vec_a[][N_MAX] = {
    {0, 0, 0},       {1, 2, 3},          {1000, 0, -1000}, {-1e30, 0, 1e30},
    {100, 100, 100}, {-100, -100, -100}, {88.7, 0, -88.7},
};
static const double vec_b[][N_MAX] = {{1, 0, 0}, {0.2, 0.3, 0.5}, {0, 0, 1}};
/* Ties of two and of three, ±inf among them, and NaNs (max and min along an axis). */
static const double extreme_a[][N_MAX] = {
    {0, 0, 0},          {1, 1, 0},      {0, -1, -1}, {1, 2, 3},   {INFINITY, INFINITY, 0},
    {-INFINITY, -INFINITY, -INFINITY},  {-1e30, 0, 1e30},        {NAN, 0, 1}, {2, NAN, 2},
};

#define COUNT(a) (int)(sizeof a / sizeof a[0])

/* ---- comparing ---- */

static bool f64_mode;

/* What exact arithmetic gives, as the build's type holds it: f32 rounds, and overflows to inf
 * (a double's conversion to float out of range is not defined by C, so it is done here). */
static double as_type(double x) {
    if (f64_mode || isnan(x) || isinf(x)) return x;
    if (fabs(x) > FLT_MAX) return copysign(INFINITY, x);
    return (double)(float)x;
}

static bool agrees(double got, double want, double eps) {
    want = as_type(want);
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    double rel = f64_mode ? 1e-12 : 1e-5, floor = f64_mode ? 1e-290 : 1e-35;
    floor += eps * (f64_mode ? DBL_EPSILON : FLT_EPSILON);
    return fabs(got - want) <= rel * fabs(want) + floor;
}

static int checked, failed;

static void compare(const Case *c, const char *what, const double *a, const double *b, double got,
                    double want) {
    int n = c->n;
    checked++;
    if (agrees(got, want, c->eps)) return;
    failed++;
    test_failures++;
    char at[256] = "";
    int len = 0;
    for (int i = 0; i < (n ? n : 1); i++)
        len += snprintf(at + len, sizeof at - (size_t)len, "%sa%s=%.9g", i ? ", " : "",
                        n ? xprintf("[%d]", i) : "", a[i]);
    for (int i = 0; b && i < (n ? n : 1); i++)
        len += snprintf(at + len, sizeof at - (size_t)len, ", b%s=%.9g",
                        n ? xprintf("[%d]", i) : "", b[i]);
    fprintf(stderr, "FAIL %s (%s) %s at %s: got %.17g, want %.17g\n", c->expr,
            f64_mode ? "f64" : "f32", what, at, got, as_type(want));
}

/* ---- compiling a case ---- */

static const char *model_text(const Case *c) {
    const char *dims = c->n ? xprintf("[%d]", c->n) : "";
    return xprintf("import \"nn\"\nmodel special {\n%s    param a%s = 0\n%s    loss = %s\n}\n",
                   c->input ? "    input x[1]\n" : "", dims,
                   c->uses_b ? xprintf("    param b%s = 0\n", dims) : "", c->expr);
}

static Graph *front_to_back(const Case *c) {
    int errors = diag_error_count();
    SrcFile *src = srcfile_from_text("special.nn", model_text(c));
    Node *ast = parse_file(src);
    Program *prog = ast ? sema_program(ast, NNC_STDLIB_DIR) : NULL;
    if (!prog || !sema_choose_model(prog, NULL)) return NULL;
    Graph *g = lower_model(prog);
    if (!g || !sema_train(prog, g)) return NULL;
    autodiff(g);
    simplify(g);
    return diag_error_count() != errors ? NULL : g;
}

static void set_param(Model *m, const char *name, const double *x, int n) {
    const nnrt_tensor *t = model_tensor(m, name);
    for (int i = 0; i < (n ? n : 1); i++) tensor_set(m, t, 0, i, x[i]);
}

/* d loss/d param as grad() wrote it; a param without a gradient buffer has derivative 0. */
static double derivative(const Model *m, const char *name, int i) {
    const nnrt_tensor *t = model_tensor(m, name);
    return t->grad_offset < 0 ? 0 : grad_get(m, t, i);
}

static bool any_nan(const double *x, int n) {
    for (int i = 0; i < (n ? n : 1); i++)
        if (isnan(x[i])) return true;
    return false;
}

static void check_point(Model *m, const Case *c, const double *a, const double *b) {
    /* The reference sees the inputs as the build holds them. */
    double ta[N_MAX], tb[N_MAX];
    int len = c->n ? c->n : 1;
    for (int i = 0; i < len; i++) ta[i] = as_type(a[i]), tb[i] = b ? as_type(b[i]) : 0;
    set_param(m, "a", ta, c->n);
    if (c->uses_b) set_param(m, "b", tb, c->n);
    if (c->input) tensor_set(m, model_tensor(m, "x"), 0, 0, 1);
    Exact want = c->ref(ta, tb, len, c->k, c->k2);
    m->desc->grad(&m->ctx);
    const nnrt_tensor *loss = model_tensor(m, m->desc->loss.name);
    const double *shown_b = c->uses_b ? tb : NULL;
    compare(c, "value", ta, shown_b, tensor_get(m, loss, 0, 0), want.value);
    if (any_nan(ta, c->n) || (c->uses_b && any_nan(tb, c->n))) return;
    for (int i = 0; i < len; i++) {
        compare(c, xprintf("d/da[%d]", i), ta, shown_b, derivative(m, "a", i), want.da[i]);
        if (c->uses_b)
            compare(c, xprintf("d/db[%d]", i), ta, shown_b, derivative(m, "b", i), want.db[i]);
    }
}

static void check_grid(Model *m, const Case *c, const double *as, int na, const double *bs,
                       int nb) {
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) check_point(m, c, &as[i], &bs[j]);
}

static void check_case(const Case *c) {
    Graph *g = front_to_back(c);
    if (!check(g != NULL, "%s: does not compile", c->expr)) return;
    Model *m = model_compile(g, f64_mode, 2, 1);
    if (!m) return;
    const char *p = c->pts;
    double none = 0;
    if (!strcmp(p, "any")) {
        check_grid(m, c, any_points, COUNT(any_points), &none, 1);
        if (f64_mode) check_grid(m, c, f64_only_points, COUNT(f64_only_points), &none, 1);
    } else if (!strcmp(p, "pair")) {
        check_grid(m, c, pair_a, COUNT(pair_a), pair_b, COUNT(pair_b));
        check_grid(m, c, pair_b, COUNT(pair_b), pair_a, COUNT(pair_a));
    } else if (!strcmp(p, "tie")) {
        check_grid(m, c, tie_points, COUNT(tie_points), tie_points, COUNT(tie_points));
    } else if (!strcmp(p, "clamp")) {
        check_grid(m, c, clamp_points, COUNT(clamp_points), &none, 1);
    } else if (!strcmp(p, "pow")) {
        check_grid(m, c, pow_a, COUNT(pow_a), pow_b, COUNT(pow_b));
    } else if (!strcmp(p, "logit")) {
        check_grid(m, c, any_points, COUNT(any_points), logit_b, COUNT(logit_b));
    } else if (!strcmp(p, "extreme")) {
        for (int i = 0; i < COUNT(extreme_a); i++) check_point(m, c, extreme_a[i], NULL);
    } else if (!strcmp(p, "prob")) {
        check_grid(m, c, prob_a, COUNT(prob_a), prob_b, COUNT(prob_b));
    } else {
        for (int i = 0; i < COUNT(vec_a); i++)
            for (int j = 0; j < COUNT(vec_b); j++) check_point(m, c, vec_a[i], vec_b[j]);
    }
    model_close(m);
}

int main(void) {
    for (int mode = 0; mode < 2; mode++) {
        f64_mode = mode;
        for (int i = 0; i < COUNT(cases); i++) check_case(&cases[i]);
    }
    printf("%d values and derivatives at special points, %d wrong\n", checked, failed);
    return test_summary("special");
}
