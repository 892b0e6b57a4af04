/* test_worker_split.c: what data-parallel workers (runtime/workers.c) rely on, in f64.
 *
 * grad() on a batch of 4 rows must equal the mean of grad() on its two halves run as two
 * workers run them: each half with first_row at its place in the batch (0, then 2), in a
 * fixed arena of its own whose params are not numbers, the params read through ctx.params
 * from the master arena. The model has a dense layer and dropout: each row must draw the
 * same mask in its half as in the whole batch, and the halves' gradients hold those masks.
 * Were first_row ignored, the second half would draw rows 0 and 1's masks, which the last
 * check shows are others. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stages.h"

#define ROWS    4
#define HALF    2
#define INPUTS  6
#define HIDDEN  16
#define CLASSES 3
#define SEED    0x5eed

/* h = dropout(tanh(x W1 + b1), 0.5); loss = softmax_ce(h W2, y); output h (the masks). */
static Model *compile(void) {
    Graph *g = graph_new("worker_split");
    Value *x = add_input(g, "x", shape1(INPUTS)), *y = add_target(g, "y", shape1(CLASSES));
    Value *W1 = add_param(g, "W1", shape2(INPUTS, HIDDEN)),
          *b1 = add_param(g, "b1", shape1(HIDDEN));
    Value *W2 = add_param(g, "W2", shape2(HIDDEN, CLASSES));
    Value *z = ir_build2(g, OP_add, ir_matmul(g, x, W1, false, false, false), b1);
    Value *h = ir_build1(g, OP_dropout, ir_build1(g, OP_tanh, z));
    h->opt[0] = 0.5;
    h->salt = 9;
    g->output = h;
    g->loss = ir_build2(g, OP_softmax_ce, ir_matmul(g, h, W2, false, false, false), y);
    g->n_forward = g->insts.n;
    autodiff(g);
    simplify(g);
    return model_compile(g, true, 2, ROWS);
}

/* Every param's gradient in `fixed`, back to back. */
static int64_t gradients(const Model *m, const double *fixed, double *out) {
    int64_t n = 0;
    for (int32_t i = 0; i < m->desc->n_params; i++) {
        const nnrt_tensor *p = &m->desc->params[i];
        for (int64_t e = 0; p->grad_offset >= 0 && e < p->numel; e++)
            out[n++] = fixed[p->grad_offset + e];
    }
    return n;
}

typedef struct rows {
    double x[ROWS][INPUTS], y[ROWS][CLASSES];
} rows;

/* Rows first .. first + count - 1 of the batch into samples 0 .. count - 1 (grad() may have
 * used the input buffers for its own values). */
static void put_rows(Model *m, const rows *r, int first, int count) {
    const nnrt_tensor *x = model_tensor(m, "x"), *y = model_tensor(m, "y");
    for (int b = 0; b < count; b++) {
        for (int i = 0; i < INPUTS; i++) tensor_set(m, x, b, i, r->x[first + b][i]);
        for (int i = 0; i < CLASSES; i++) tensor_set(m, y, b, i, r->y[first + b][i]);
    }
}

/* Whether sample b of the output (the dropout) drops the elements row `row` of `masks`
 * drops. */
static bool same_mask(const Model *m, const nnrt_ctx *ctx, int64_t b, const double *mask) {
    const double *out = (const double *)ctx->varying + m->desc->output.offset * ctx->batch_cap;
    for (int i = 0; i < HIDDEN; i++)
        if ((out[b * HIDDEN + i] == 0) != (mask[i] == 0)) return false;
    return true;
}

/* grad() of rows first, first + 1 as a worker runs it; adds half its gradient to sum. */
static void run_half(Model *m, const rows *r, double *own_fixed, int64_t first_row, int first,
                     double *sum, double masks[ROWS][HIDDEN]) {
    put_rows(m, r, first, HALF);
    nnrt_ctx ctx = m->ctx;
    ctx.fixed = own_fixed;
    ctx.params = m->ctx.fixed;
    ctx.batch = HALF;
    ctx.first_row = first_row;
    m->desc->grad(&ctx);
    static double g[1 << 12];
    int64_t n = gradients(m, own_fixed, g);
    for (int64_t e = 0; e < n; e++) sum[e] += 0.5 * g[e];
    for (int b = 0; b < HALF; b++)
        check(same_mask(m, &ctx, b, masks[first + b]) == (first_row == first),
              "row %d (first_row %lld): its mask %s the whole batch's", first + b,
              (long long)first_row, first_row == first ? "differs from" : "is");
}

int main(void) {
    Model *m = compile();
    if (!m) return test_summary("test_worker_split");
    fill_leaves(m, -1, 1);
    rows r;
    for (int b = 0; b < ROWS; b++) {
        for (int i = 0; i < INPUTS; i++) r.x[b][i] = random_uniform(-2, 2);
        for (int i = 0; i < CLASSES; i++) r.y[b][i] = i == b % CLASSES;
    }
    const nnrt_model *d = m->desc;
    m->ctx.training = NNRT_TRAINING;
    m->ctx.noise_seed = SEED;

    /* the whole batch */
    put_rows(m, &r, 0, ROWS);
    m->ctx.batch = ROWS;
    m->ctx.first_row = 0;
    d->grad(&m->ctx);
    static double whole[1 << 12], halves[1 << 12], masks[ROWS][HIDDEN];
    int64_t n = gradients(m, m->ctx.fixed, whole);
    check(n > 0 && n < (1 << 12), "%lld gradient elements", (long long)n);
    const double *out = (const double *)m->ctx.varying + d->output.offset * m->ctx.batch_cap;
    int dropped = 0;
    for (int b = 0; b < ROWS; b++)
        for (int i = 0; i < HIDDEN; i++) dropped += (masks[b][i] = out[b * HIDDEN + i]) == 0;
    check(dropped > 0 && dropped < ROWS * HIDDEN, "dropout dropped %d of %d", dropped,
          ROWS * HIDDEN);

    /* the two halves, each in a fixed arena of its own whose params are nan */
    double *own = malloc((size_t)d->fixed_elems * sizeof *own);
    memcpy(own, m->ctx.fixed, (size_t)d->fixed_elems * sizeof *own);
    for (int32_t i = 0; i < d->n_params; i++)
        for (int64_t e = 0; e < d->params[i].numel; e++) own[d->params[i].offset + e] = NAN;
    run_half(m, &r, own, 0, 0, halves, masks);
    run_half(m, &r, own, 2, 2, halves, masks);
    double worst = 0;
    for (int64_t e = 0; e < n; e++)
        worst = fmax(worst, fabs(halves[e] - whole[e]) / fmax(1, fabs(whole[e])));
    check(worst <= 1e-12, "the halves' mean gradient is off the whole batch's by %g", worst);

    /* The test can tell: the second half run with first_row 0 draws rows 0-1's masks. */
    static double ignored[1 << 12];
    run_half(m, &r, own, 0, 2, ignored, masks);
    free(own);
    model_close(m);
    return test_summary("test_worker_split");
}
