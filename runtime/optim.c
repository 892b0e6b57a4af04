/* optim.c: optimizers, penalties, clipping and schedules (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

/* ---- the loops, for both element types ---- */

#define T       float
#define K(name) name##_f32
#define SQRT    sqrtf
#include "optim_kernels.inc"
#undef T
#undef K
#undef SQRT
#define T       double
#define K(name) name##_f64
#define SQRT    sqrt
#include "optim_kernels.inc"
#undef T
#undef K
#undef SQRT

/* Calls the float or the double instance of a loop. */
#define KERNEL(f64, name, ...) ((f64) ? name##_f64(__VA_ARGS__) : name##_f32(__VA_ARGS__))

/* ---- the optimizers ---- */

enum rule { RULE_SGD, RULE_ADAGRAD, RULE_ADADELTA, RULE_RMSPROP, RULE_ADAM, RULE_ADAMW };

typedef struct rule_info {
    const char *name;
    enum rule rule;
    double eps; /* the paper's (and PyTorch's) default */
} rule_info;

static const rule_info rules[] = {
    {"sgd", RULE_SGD, 0},
    {"adagrad", RULE_ADAGRAD, 1e-10},
    {"adadelta", RULE_ADADELTA, 1e-6},
    {"rmsprop", RULE_RMSPROP, 1e-8},
    {"adam", RULE_ADAM, 1e-8},
    {"adamw", RULE_ADAMW, 1e-8},
};

struct rt_optim {
    const nnrt_model *m;
    const rt_options *o;
    void *fixed;
    enum rule rule;
    double eps;
    int fused;
    int slots;
    const char *slot_names[RT_OPTIM_MAX_SLOTS];
    int slot_squares[RT_OPTIM_MAX_SLOTS];
    void **state[RT_OPTIM_MAX_SLOTS]; /* [slot][param] */
    double *l1, *l2;                  /* per param; NULL when no param has that penalty */
    int64_t steps;
};

static const rule_info *find_rule(const char *name) {
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].name, name) == 0) return &rules[i];
    rt_usage_error("unknown optimizer '%s' (sgd, adagrad, adadelta, rmsprop, adam or adamw)", name);
}

/* ---- penalties: "1e-4", "h.W=1e-3,p.W=0", "1e-4,h.W=1e-3" ---- */

static int32_t param_index(const nnrt_model *m, const char *name, size_t len) {
    for (int32_t i = 0; i < m->n_params; i++)
        if (strlen(m->params[i].name) == len && strncmp(m->params[i].name, name, len) == 0)
            return i;
    return -1;
}

static double penalty_number(const char *option, const char *text, size_t len) {
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        rt_usage_error("--%s: '%.*s' is not a number", option, (int)len, text);
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v) || v < 0)
        rt_usage_error("--%s: '%s' is not a number >= 0", option, buf);
    return v;
}

/* "its params: a, b, c" for messages. */
static void param_list(const nnrt_model *m, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < m->n_params && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", m->params[i].name);
}

/* A bare number applies to every weight (a param of rank >= 2); NAME=X to one param, and
 * wins over the bare number whatever the order. */
static double *parse_penalty(const nnrt_model *m, const char *option, const char *spec) {
    if (!spec || !*spec) return NULL;
    double *per = rt_alloc_array((size_t)m->n_params, sizeof *per);
    unsigned char *named = rt_alloc((size_t)m->n_params);
    double all = 0;
    int any = 0;
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            all = penalty_number(option, p, len);
        } else {
            int32_t i = param_index(m, p, (size_t)(eq - p));
            if (i < 0) {
                char list[1024];
                param_list(m, list, sizeof list);
                rt_usage_error("--%s: model '%s' has no param '%.*s' (its params: %s)", option,
                               m->name, (int)(eq - p), p, list);
            }
            per[i] = penalty_number(option, eq + 1, len - (size_t)(eq + 1 - p));
            named[i] = 1;
        }
        if (!comma) break;
        p = comma + 1;
    }
    for (int32_t i = 0; i < m->n_params; i++) {
        if (!named[i] && m->params[i].rank >= 2) per[i] = all;
        any |= per[i] != 0;
    }
    rt_free(named);
    if (any) return per;
    rt_free(per);
    return NULL;
}

/* ---- state ---- */

/* What a slot holds: averages and sums of squares are never negative, which a checkpoint's
 * values are checked against. */
enum slot_sign { ANY_SIGN, SQUARES };

static void add_slot(rt_optim *op, const char *name, enum slot_sign sign) {
    const nnrt_model *m = op->m;
    int s = op->slots++;
    op->slot_names[s] = name;
    op->slot_squares[s] = sign == SQUARES;
    op->state[s] = rt_alloc_array((size_t)m->n_params, sizeof(void *));
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->grad_offset < 0 && !op->fused) continue;
        if (op->fused) /* sgd_step keeps its velocity in the arena */
            op->state[s][i] =
                t->velocity_offset < 0 ? NULL : rt_elem_ptr(op->fixed, t->velocity_offset, m->f64);
        else
            op->state[s][i] = rt_alloc_aligned((size_t)t->numel, rt_elem_size(m->f64));
    }
}

static void make_state(rt_optim *op) {
    const rt_options *o = op->o;
    switch (op->rule) {
    case RULE_SGD:
        if (o->momentum > 0) add_slot(op, "velocity", ANY_SIGN);
        break;
    case RULE_ADAGRAD: add_slot(op, "sum_sq_grad", SQUARES); break;
    case RULE_ADADELTA:
        add_slot(op, "avg_sq_grad", SQUARES);
        add_slot(op, "avg_sq_delta", SQUARES);
        break;
    case RULE_RMSPROP:
        add_slot(op, "avg_sq_grad", SQUARES);
        if (o->momentum > 0) add_slot(op, "velocity", ANY_SIGN);
        break;
    case RULE_ADAM:
    case RULE_ADAMW:
        add_slot(op, "m", ANY_SIGN);
        add_slot(op, "v", SQUARES);
        break;
    }
}

rt_optim *rt_optim_new(const nnrt_model *m, void *fixed, const rt_options *o) {
    rt_optim *op = rt_alloc(sizeof *op);
    const rule_info *r = find_rule(o->optimizer ? o->optimizer : "sgd");
    op->m = m;
    op->o = o;
    op->fixed = fixed;
    op->rule = r->rule;
    op->eps = o->eps >= 0 ? o->eps : r->eps;
    op->l1 = parse_penalty(m, "l1", o->l1);
    op->l2 = parse_penalty(m, "l2", o->l2);
    op->fused = r->rule == RULE_SGD && !(o->nesterov && o->momentum > 0) && !op->l1 && !op->l2 &&
                o->clip == 0;
    if (!op->fused && !m->grad) rt_fatal("model descriptor: no grad entry point");
    make_state(op);
    return op;
}

void rt_optim_free(rt_optim *op) {
    if (!op) return;
    for (int s = 0; s < op->slots; s++) {
        for (int32_t i = 0; i < op->m->n_params && !op->fused; i++) rt_free(op->state[s][i]);
        rt_free(op->state[s]);
    }
    rt_free(op->l1);
    rt_free(op->l2);
    rt_free(op);
}

int rt_optim_fused(const rt_optim *op) {
    return op->fused;
}
int rt_optim_slots(const rt_optim *op) {
    return op->slots;
}
const char *rt_optim_slot_name(const rt_optim *op, int s) {
    return op->slot_names[s];
}
int rt_optim_slot_nonnegative(const rt_optim *op, int s) {
    return op->slot_squares[s];
}
void *rt_optim_state(const rt_optim *op, int s, int32_t param) {
    return op->state[s][param];
}
int64_t rt_optim_steps(const rt_optim *op) {
    return op->steps;
}
void rt_optim_set_steps(rt_optim *op, int64_t steps) {
    op->steps = steps;
}

/* ---- one step ---- */

static void *param_ptr(const rt_optim *op, int32_t i) {
    return rt_elem_ptr(op->fixed, op->m->params[i].offset, op->m->f64);
}
static void *grad_ptr(const rt_optim *op, int32_t i) {
    return rt_elem_ptr(op->fixed, op->m->params[i].grad_offset, op->m->f64);
}

/* The first param that is not finite after an update, or -1. With the fused step there is
 * no gradient to inspect, so this names the fault; after the other updates it catches a
 * finite gradient too large for the step (an overflow), before the next loss is inf. */
static int32_t nonfinite_param(const rt_optim *op) {
    const nnrt_model *m = op->m;
    for (int32_t i = 0; i < m->n_params; i++)
        if (KERNEL(m->f64, nonfinite, param_ptr(op, i), m->params[i].numel)) return i;
    return -1;
}

/* A scan of every param after every fused step would cost a pass over the weights each
 * step. The step's loss is checked instead (B numbers); once it is not finite, the params
 * are scanned to name the one that broke. A blow-up shows one step later this way, as the
 * loss of the step after it. */
static int32_t fused_step(rt_optim *op, nnrt_ctx *ctx, double lr) {
    op->m->sgd_step(ctx, lr, op->o->momentum);
    return isfinite(rt_batch_cost(op->m, ctx)) ? -1 : nonfinite_param(op);
}

/* Penalties into the gradients, the non-finite check, then clipping by global norm. */
static int32_t prepare_gradients(rt_optim *op) {
    const nnrt_model *m = op->m;
    double sum_sq = 0;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->grad_offset < 0) continue;
        void *g = grad_ptr(op, i);
        if (KERNEL(m->f64, nonfinite, g, t->numel)) return i;
        double l1 = op->l1 ? op->l1[i] : 0, l2 = op->l2 ? op->l2[i] : 0;
        if (l1 != 0 || l2 != 0) KERNEL(m->f64, penalise, g, param_ptr(op, i), t->numel, l1, l2);
        if (op->o->clip > 0) sum_sq += KERNEL(m->f64, sum_squares, g, t->numel);
    }
    double norm = sqrt(sum_sq);
    if (op->o->clip > 0 && norm > op->o->clip)
        for (int32_t i = 0; i < m->n_params; i++)
            if (m->params[i].grad_offset >= 0)
                KERNEL(m->f64, scale, grad_ptr(op, i), m->params[i].numel, op->o->clip / norm);
    return -1;
}

static void update_param(rt_optim *op, int32_t i, double lr) {
    const nnrt_model *m = op->m;
    const rt_options *o = op->o;
    int f64 = m->f64;
    int64_t n = m->params[i].numel;
    void *p = param_ptr(op, i), *g = grad_ptr(op, i);
    void *s0 = op->slots > 0 ? op->state[0][i] : NULL;
    void *s1 = op->slots > 1 ? op->state[1][i] : NULL;
    switch (op->rule) {
    case RULE_SGD:
        if (s0)
            KERNEL(f64, momentum, p, g, s0, n, lr, o->momentum, o->nesterov);
        else
            KERNEL(f64, sgd, p, g, n, lr);
        break;
    case RULE_ADAGRAD: KERNEL(f64, adagrad, p, g, s0, n, lr, op->eps); break;
    case RULE_ADADELTA: KERNEL(f64, adadelta, p, g, s0, s1, n, lr, o->rho, op->eps); break;
    case RULE_RMSPROP:
        KERNEL(f64, rmsprop, p, g, s0, s1, n, lr, o->rho, op->eps, o->momentum);
        break;
    case RULE_ADAM:
    case RULE_ADAMW: {
        double t = (double)op->steps;
        double c1 = 1 - pow(o->beta1, t), c2 = 1 - pow(o->beta2, t);
        double decay = op->rule == RULE_ADAMW ? lr * o->weight_decay : 0;
        KERNEL(f64, adam, p, g, s0, s1, n, lr, o->beta1, o->beta2, op->eps, c1, c2, decay);
        break;
    }
    }
}

int32_t rt_optim_step(rt_optim *op, nnrt_ctx *ctx, double lr, enum rt_fault *kind) {
    op->steps++;
    *kind = RT_FAULT_VALUE;
    if (op->fused) return fused_step(op, ctx, lr);
    op->m->grad(ctx);
    int32_t bad = prepare_gradients(op);
    *kind = RT_FAULT_GRADIENT;
    if (bad >= 0) return bad;
    *kind = RT_FAULT_VALUE;
    for (int32_t i = 0; i < op->m->n_params; i++)
        if (op->m->params[i].grad_offset >= 0) update_param(op, i, lr);
    return nonfinite_param(op);
}

/* ---- schedules ---- */

double rt_schedule_lr(const rt_options *o, int64_t epoch, int64_t epochs) {
    const double pi = 3.14159265358979323846;
    if (epoch <= o->warmup) return o->lr * (double)epoch / (double)o->warmup;
    int64_t k = epoch - o->warmup - 1; /* epochs since the warm-up, from 0 */
    const char *s = o->schedule ? o->schedule : "constant";
    if (strcmp(s, "step") == 0) return o->lr * pow(o->step_factor, (double)(k / o->step_every));
    if (strcmp(s, "exponential") == 0) return o->lr * pow(o->gamma, (double)k);
    if (strcmp(s, "cosine") == 0) {
        int64_t span = epochs - o->warmup;
        if (span < 1) span = 1;
        return o->min_lr + (o->lr - o->min_lr) * (1 + cos(pi * (double)k / (double)span)) / 2;
    }
    return o->lr;
}
