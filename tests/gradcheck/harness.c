/* harness.c: checks a compiled model's derived gradients against central finite
 * differences. Linked with an object from `nnc --f64 -c MODEL.nn`, it sets every param and
 * input to random values, asks the model's grad() for d cost/d param, and compares each
 * element with (cost(p + h) - cost(p - h)) / 2h computed through the model's forward().
 * Exit status 1 when any element's relative error exceeds the tolerance. */
#include "nnrt.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH     3
#define STEP      1e-5
#define TOLERANCE 1e-6
#define SMALL     1e-3 /* below this, errors are measured against SMALL, not the gradient */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static double uniform(double lo, double hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}

static double start_value(const nnrt_tensor *p) {
    switch (p->init) {
    case NNRT_INIT_CONST: return p->init_a;
    case NNRT_INIT_UNIFORM: return uniform(p->init_a, p->init_b);
    case NNRT_INIT_NORMAL: return p->init_a + p->init_b * uniform(-1.7, 1.7);
    default: return uniform(-1, 1);
    }
}

static double *fixed_at(nnrt_ctx *ctx, int64_t offset) {
    return (double *)ctx->fixed + offset;
}

static double *varying_at(nnrt_ctx *ctx, const nnrt_tensor *t) {
    return (double *)ctx->varying + t->offset * ctx->batch_cap;
}

/* The cost the gradient is of: the batch mean of the per-sample losses. */
static double cost(const nnrt_model *m, nnrt_ctx *ctx) {
    m->forward(ctx);
    if (!m->loss.varying) return *fixed_at(ctx, m->loss.offset);
    const double *loss = varying_at(ctx, &m->loss);
    double sum = 0;
    for (int64_t b = 0; b < ctx->batch; b++) sum += loss[b];
    return sum / (double)ctx->batch;
}

static void fill_random(double *x, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) x[i] = uniform(lo, hi);
}

int main(void) {
    const nnrt_model *m = &nnrt_model_desc;
    if (!m->f64) {
        fprintf(stderr, "gradcheck: compile the model with --f64\n");
        return 2;
    }
    int64_t batch = m->n_inputs ? BATCH : 1;
    nnrt_ctx ctx = {calloc((size_t)m->fixed_elems + 1, sizeof(double)),
                    calloc((size_t)(m->varying_elems * batch) + 1, sizeof(double)), batch, batch};
    for (int i = 0; i < m->n_inputs; i++)
        fill_random(varying_at(&ctx, &m->inputs[i]), m->inputs[i].numel * batch, -1, 1);
    for (int i = 0; i < m->n_targets; i++)
        fill_random(varying_at(&ctx, &m->targets[i]), m->targets[i].numel * batch, 0, 1);
    for (int i = 0; i < m->n_params; i++)
        for (int64_t j = 0; j < m->params[i].numel; j++)
            fixed_at(&ctx, m->params[i].offset)[j] = start_value(&m->params[i]);

    m->grad(&ctx);
    int64_t total = 0;
    for (int i = 0; i < m->n_params; i++) total += m->params[i].numel;
    double *derived = calloc((size_t)total + 1, sizeof(double));
    int64_t k = 0;
    for (int i = 0; i < m->n_params; i++)
        for (int64_t j = 0; j < m->params[i].numel; j++, k++)
            derived[k] =
                m->params[i].grad_offset < 0 ? 0 : fixed_at(&ctx, m->params[i].grad_offset)[j];

    int failures = 0;
    k = 0;
    printf("%-12s %8s %14s %14s %10s\n", "param", "element", "derived", "numeric", "rel.error");
    for (int i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        double *value = fixed_at(&ctx, p->offset), worst = 0;
        for (int64_t j = 0; j < p->numel; j++, k++) {
            double saved = value[j];
            value[j] = saved + STEP;
            double up = cost(m, &ctx);
            value[j] = saved - STEP;
            double down = cost(m, &ctx);
            value[j] = saved;
            double numeric = (up - down) / (2 * STEP);
            double scale = fmax(SMALL, fmax(fabs(numeric), fabs(derived[k])));
            double err = fabs(numeric - derived[k]) / scale;
            if (err > worst) worst = err;
            bool bad = !(err <= TOLERANCE);
            failures += bad;
            if (bad || j < 3)
                printf("%-12s %8lld %14.8g %14.8g %10.2e%s\n", p->name, (long long)j, derived[k],
                       numeric, err, bad ? "  FAIL" : "");
        }
        printf("%-12s worst relative error %.2e over %lld elements\n", p->name, worst,
               (long long)p->numel);
    }
    printf("%s: %s\n", m->name, failures ? "FAILED" : "gradients match");
    free(derived);
    free(ctx.fixed);
    free(ctx.varying);
    return failures ? 1 : 0;
}
