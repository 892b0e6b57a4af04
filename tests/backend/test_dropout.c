/* test_dropout.c: dropout in the compiled code, in f32 and f64.
 *
 * While ctx->training is 1: the masks are exactly docs/codegen.md's hash (the reference
 * computes it on its own), about `rate` of the elements are dropped, and the kept ones are
 * multiplied by exactly 1/(1-rate). With training 0 the op is the identity. A mask depends
 * on noise_seed and on the site's salt, not on the batch capacity, the batch size, or
 * whether the loop around it is flat or nested; the backward pass draws the forward pass's
 * masks. The optimised loop stays vector code. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stages.h"

#define ROWS  4
#define COLS  250 /* 1000 elements per sample */
#define NUMEL (ROWS * COLS)
#define CAP   8

static bool f64_mode;

typedef struct Site {
    Graph *g;
    Value *y; /* the dropout */
    Model *m;
} Site;

static Value *dropout(Graph *g, Value *u, double rate, int salt) {
    Value *d = ir_build1(g, OP_dropout, u);
    d->opt[0] = rate;
    d->salt = salt;
    return d;
}

/* y = dropout(x, rate), or dropout(x + b) with a bias b (zero) repeated along the rows,
 * which makes the loop nested; x is uniform in [1, 2), so a zero in y is a dropped element. */
static Site compile_site(bool nested, double rate, int salt) {
    Site s = {graph_new(nested ? "dropout_nested" : "dropout_flat"), NULL, NULL};
    Value *u = add_input(s.g, "x", shape2(ROWS, COLS));
    if (nested) u = ir_build2(s.g, OP_add, u, add_param(s.g, "b", shape1(COLS)));
    s.y = dropout(s.g, u, rate, salt);
    s.g->output = s.y;
    s.g->loss = ir_build1(s.g, OP_sum, s.y);
    s.m = model_compile(s.g, f64_mode, 2, CAP);
    if (s.m) tensor_fill_random(s.m, model_tensor(s.m, "x"), 1, 2);
    return s;
}

/* Runs forward and copies every sample's output to out[b * NUMEL + i]. */
static void run(Site *s, int training, uint64_t seed, double *out) {
    s->m->ctx.training = training;
    s->m->ctx.noise_seed = seed;
    s->m->desc->forward(&s->m->ctx);
    for (int64_t b = 0; b < s->m->ctx.batch; b++)
        for (int64_t i = 0; i < NUMEL; i++)
            out[b * NUMEL + i] = tensor_get(s->m, &s->m->desc->output, b, i);
}

/* x * 1/(1-rate), rounded as the compiled code rounds it. */
static double scaled(double x, double rate) {
    if (f64_mode) return x * (1 / (1 - rate));
    return (double)((float)x * (float)(1 / (1 - rate)));
}

static double fraction_differing(const double *a, const double *b, int64_t n) {
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += (a[i] == 0) != (b[i] == 0);
    return (double)differ / (double)n;
}

static bool same(const double *a, const double *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static const char *mode(void) {
    return f64_mode ? "f64" : "f32";
}

/* Dropped fraction near rate, kept values scaled exactly, masks as the reference draws them,
 * identity without training. */
static void training_and_identity(double rate) {
    Site s = compile_site(false, rate, 11);
    if (!s.m) return;
    static double out[CAP * NUMEL];
    run(&s, 1, 42, out);
    const nnrt_tensor *x = model_tensor(s.m, "x");
    int64_t zeros = 0, wrong = 0, n = CAP * NUMEL;
    for (int64_t b = 0; b < CAP; b++)
        for (int64_t i = 0; i < NUMEL; i++) {
            double y = out[b * NUMEL + i];
            zeros += y == 0;
            wrong += y != 0 && y != scaled(tensor_get(s.m, x, b, i), rate);
        }
    double dropped = (double)zeros / (double)n, sigma = sqrt(rate * (1 - rate) / (double)n);
    check(fabs(dropped - rate) <= 5 * sigma, "%s rate %g: %.4f of the elements dropped", mode(),
          rate, dropped);
    check(wrong == 0, "%s rate %g: %lld kept elements not scaled by 1/(1-rate)", mode(), rate,
          (long long)wrong);
    /* The reference scales in double: f32 rounds the product once more. */
    check_value(xprintf("%s dropout rate %g vs reference", mode(), rate), s.m, s.y,
                &s.m->desc->output, f64_mode ? 0 : 1e-7);
    run(&s, 0, 42, out);
    for (int64_t b = 0; b < CAP; b++)
        for (int64_t i = 0; i < NUMEL; i++) wrong += out[b * NUMEL + i] != tensor_get(s.m, x, b, i);
    check(wrong == 0, "%s rate %g: training 0 is not the identity", mode(), rate);
    model_close(s.m);
}

/* The same seed gives the same masks, another seed, another sample or another site gives
 * others; the batch size, the capacity and the loop's shape change nothing. */
static void what_masks_depend_on(void) {
    const double rate = 0.3, expected_differ = 2 * rate * (1 - rate);
    Site flat = compile_site(false, rate, 5), other_site = compile_site(false, rate, 6);
    Site nested = compile_site(true, rate, 5);
    if (!flat.m || !other_site.m || !nested.m) return;
    static double a[CAP * NUMEL], b[CAP * NUMEL];
    int64_t n = CAP * NUMEL;
    run(&flat, 1, 7, a);
    run(&flat, 1, 7, b);
    check(same(a, b, n), "%s: the same noise_seed gave different masks", mode());
    run(&flat, 1, 8, b);
    check(fabs(fraction_differing(a, b, n) - expected_differ) < 0.05,
          "%s: noise_seeds 7 and 8 differ at %.3f of the elements", mode(),
          fraction_differing(a, b, n));
    check(fabs(fraction_differing(a, a + NUMEL, NUMEL) - expected_differ) < 0.1,
          "%s: samples 0 and 1 differ at %.3f of the elements", mode(),
          fraction_differing(a, a + NUMEL, NUMEL));
    run(&other_site, 1, 7, b);
    check(fabs(fraction_differing(a, b, n) - expected_differ) < 0.05,
          "%s: salts 5 and 6 differ at %.3f of the elements", mode(), fraction_differing(a, b, n));
    run(&nested, 1, 7, b);
    check(fraction_differing(a, b, n) == 0, "%s: a nested loop numbers the elements otherwise",
          mode());
    nested.m->ctx.batch = 5;
    memset(b, 0, sizeof b);
    run(&nested, 1, 7, b);
    check(fraction_differing(a, b, 5 * NUMEL) == 0, "%s: batch 5 of 8 changes the masks", mode());
    model_close(flat.m);
    model_close(other_site.m);
    model_close(nested.m);
}

/* loss = sum(dropout(x * w)) through autodiff and simplify: d cost/d w_i is the batch mean of
 * x_bi times the mask factor forward() used, and the mean of x_bi without training. */
static void backward_uses_forward_masks(void) {
    const double rate = 0.4;
    Graph *g = graph_new("dropout_grad");
    Value *x = add_input(g, "x", shape1(COLS)), *w = add_param(g, "w", shape1(COLS));
    Value *y = dropout(g, ir_build2(g, OP_mul, x, w), rate, 3);
    y->name = "y";
    g->output = y;
    g->loss = ir_build1(g, OP_sum, y);
    g->n_forward = g->insts.n;
    autodiff(g);
    simplify(g);
    Model *m = model_compile(g, f64_mode, 2, CAP);
    if (!m) return;
    fill_leaves(m, 1, 2);
    const nnrt_tensor *tx = model_tensor(m, "x"), *tw = model_tensor(m, "w");
    for (int training = 0; training <= 1; training++) {
        m->ctx.training = training;
        m->ctx.noise_seed = 99;
        m->desc->grad(&m->ctx);
        double worst = 0;
        for (int64_t i = 0; i < COLS; i++) {
            double want = 0;
            for (int64_t b = 0; b < CAP; b++) {
                double xv = tensor_get(m, tx, b, i), wv = tensor_get(m, tw, 0, i);
                double factor = tensor_get(m, &m->desc->output, b, i) / (xv * wv);
                want += xv * factor / CAP;
            }
            double err = fabs(grad_get(m, tw, i) - want) / fmax(1, fabs(want));
            if (err > worst) worst = err;
        }
        check(worst <= (f64_mode ? 1e-12 : 1e-5), "%s: d cost/d w off by %g with training %d",
              mode(), worst, training);
    }
    model_close(m);
}

static char *optimised_ir(Graph *g) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    BackendOptions opt = {.opt_level = 2, .f64 = f64_mode, .llvm_ir_out = out};
    check(backend_compile(g, &opt) == 0, "compiling %s", g->name);
    fclose(out);
    return text;
}

/* The hash is integer arithmetic in the loop: it must vectorise with it. */
static void stays_vector_code(void) {
    Graph *g = graph_new("dropout_vector");
    Value *x = add_input(g, "x", shape1(256)), *b = add_param(g, "b", shape1(256));
    Value *y = dropout(g, ir_build1(g, OP_relu, ir_build2(g, OP_add, x, b)), 0.5, 1);
    g->output = y;
    g->loss = ir_build1(g, OP_sum, y);
    char *ir = optimised_ir(g);
    check(strstr(ir, " x i64>") != NULL, "%s: the mask hash is not vector code", mode());
    check(strstr(ir, f64_mode ? " x double>" : " x float>") != NULL,
          "%s: the dropout loop is not vector code", mode());
    free(ir);
}

int main(void) {
    for (int f = 0; f <= 1; f++) {
        f64_mode = f;
        training_and_identity(0.3);
        training_and_identity(0.5);
        training_and_identity(0.9);
        what_masks_depend_on();
        backward_uses_forward_masks();
        stays_vector_code();
    }
    return test_summary("test_dropout");
}
