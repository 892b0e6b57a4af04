/* init.c: parameter and state initialisers. Each param draws from the shared init stream in
 * descriptor order, so adding a param at the end of a model leaves the earlier ones
 * unchanged; states start at constants. */
#include "init.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

void rt_fans(const nnrt_tensor *t, double *fan_in, double *fan_out) {
    if (t->rank == 0) {
        *fan_in = *fan_out = 1.0;
        return;
    }
    if (t->rank == 4) { /* conv2d's weights [C_out, C_in, kH, kW]: PyTorch's fans */
        double field = (double)t->dims[2] * (double)t->dims[3];
        *fan_in = (double)t->dims[1] * field;
        *fan_out = (double)t->dims[0] * field;
        return;
    }
    *fan_out = (double)t->dims[t->rank - 1];
    double in = 1.0;
    for (int32_t i = 0; i + 1 < t->rank; i++) in *= (double)t->dims[i];
    *fan_in = in; /* 1 for a vector (a bias): the empty product */
}

const char *rt_init_name(int32_t init) {
    switch (init) {
    case NNRT_INIT_ZEROS: return "zeros";
    case NNRT_INIT_ONES: return "ones";
    case NNRT_INIT_CONST: return "const";
    case NNRT_INIT_GLOROT: return "glorot";
    case NNRT_INIT_HE: return "he";
    case NNRT_INIT_NORMAL: return "normal";
    case NNRT_INIT_UNIFORM: return "uniform";
    default: return NULL;
    }
}

/* One element of a param by its initialiser. */
static double draw(const nnrt_tensor *t, double fan_in, double fan_out, rt_rng *rng) {
    switch (t->init) {
    case NNRT_INIT_ZEROS: return 0.0;
    case NNRT_INIT_ONES: return 1.0;
    case NNRT_INIT_CONST: return t->init_a;
    case NNRT_INIT_GLOROT: {
        double r = sqrt(6.0 / (fan_in + fan_out));
        return -r + 2.0 * r * rt_rng_uniform(rng);
    }
    case NNRT_INIT_HE: return sqrt(2.0 / fan_in) * rt_rng_normal(rng);
    case NNRT_INIT_NORMAL: return t->init_a + t->init_b * rt_rng_normal(rng);
    case NNRT_INIT_UNIFORM: return t->init_a + (t->init_b - t->init_a) * rt_rng_uniform(rng);
    default: return 0.0; /* rt_check_model rejected unknown codes before we got here */
    }
}

void rt_init_params(const nnrt_model *m, void *fixed, rt_rng *rng) {
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        double fan_in, fan_out;
        rt_fans(t, &fan_in, &fan_out);
        for (int64_t e = 0; e < t->numel; e++)
            rt_set(fixed, t->offset + e, m->f64, draw(t, fan_in, fan_out, rng));
    }
    rt_init_states(m, fixed);
}

int rt_init_is_constant(int32_t init) {
    return init == NNRT_INIT_ZEROS || init == NNRT_INIT_ONES || init == NNRT_INIT_CONST;
}

void rt_init_state(const nnrt_model *m, void *fixed, const nnrt_tensor *t) {
    for (int64_t e = 0; e < t->numel; e++)
        rt_set(fixed, t->offset + e, m->f64, draw(t, 1, 1, NULL)); /* constant: no draw */
}

void rt_init_states(const nnrt_model *m, void *fixed) {
    for (int32_t i = 0; i < m->n_states; i++) rt_init_state(m, fixed, &m->states[i]);
}

/* One item NAME=X of --set: X as a number the model's type holds. */
static double set_value(const nnrt_model *m, const char *option, const char *item, size_t len,
                        const char *text) {
    char *end;
    double v = strtod(text, &end);
    if (end == text || end != item + len || !isfinite(v) || (!m->f64 && fabs(v) > FLT_MAX))
        rt_usage_error("%s: '%.*s' is not NAME=number (a finite number%s)", option, (int)len, item,
                       m->f64 ? "" : " that a float holds");
    return v;
}

void rt_set_params(const nnrt_model *m, void *fixed, const char *spec, const char *option) {
    unsigned char *on = rt_alloc((size_t)m->n_params + 1);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            rt_usage_error("%s: '%.*s' is not NAME=number (such as x=0.3)", option, (int)len, p);
        double v = set_value(m, option, p, len, eq + 1);
        memset(on, 0, (size_t)m->n_params);
        rt_mark_params(m, option, p, (size_t)(eq - p), on);
        for (int32_t i = 0; i < m->n_params; i++)
            for (int64_t e = 0; on[i] && e < m->params[i].numel; e++)
                rt_set(fixed, m->params[i].offset + e, m->f64, v);
        if (!comma) break;
        p = comma + 1;
    }
    rt_free(on);
}
