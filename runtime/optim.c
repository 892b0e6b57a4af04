/* optim.c: optimizers, penalties, clipping and schedules (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim_settings.h"
#include "util.h"

/* One update's scalars: the rate, the step count t (1 at the first update), and the settings
 * the optimizer reads: the option's value, else the row's default. */
typedef struct step_settings {
    double lr, t;
#define SETTING_VALUE(s) double s;
    OPTIM_SETTINGS(SETTING_VALUE)
#undef SETTING_VALUE
} step_settings;

/* ---- the loops, for both element types ---- */

/* What an update's loop found in the elements it went through (K(check)). */
enum { GRADIENT_NOT_FINITE = 1, PARAM_NOT_FINITE = 2 };

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

/* ---- the optimizers: optimizers.def ---- */

/* Whether a row reads a setting, and its default there (NAN: the option's own). */
typedef struct setting_default {
    int read;
    double value;
} setting_default;

typedef struct row_settings {
#define SETTING_DEFAULT(s) setting_default s;
    OPTIM_SETTINGS(SETTING_DEFAULT)
#undef SETTING_DEFAULT
} row_settings;

/* What a slot holds: averages and sums of squares and maxima of |g| are never negative,
 * which a checkpoint's values are checked against. */
enum slot_sign { ANY_SIGN, NEVER_NEGATIVE };
enum slot_when { ALWAYS, WITH_MOMENTUM };

typedef struct slot_info {
    const char *name; /* NULL past the row's last slot */
    enum slot_sign sign;
    enum slot_when when;
} slot_info;

/* The loops take a param's slots as s0 and s1. */
_Static_assert(RT_OPTIM_MAX_SLOTS == 2, "optim_kernels.inc's loops take two slots");

typedef int update_f32(float *restrict p, const float *restrict g, float *restrict s0,
                       float *restrict s1, int64_t n, const step_settings *h);
typedef int update_f64(double *restrict p, const double *restrict g, double *restrict s0,
                       double *restrict s1, int64_t n, const step_settings *h);

typedef struct optimizer {
    const char *name;
    row_settings reads;
    slot_info slots[RT_OPTIM_MAX_SLOTS];
    const char *help, *paper;
    update_f32 *update_f32;
    update_f64 *update_f64;
} optimizer;

/* The notation of optimizers.def's rows. */
/* clang-format off */
#define UNPAREN(...)           __VA_ARGS__
#define DEFAULT(x)             {1, (x)}
#define SHARED                 {1, NAN}
#define SLOT(name, sign, when) {#name, sign, when}
#define OPTIMIZER(name, reads, slots, help, paper) \
    {#name, {UNPAREN reads}, {UNPAREN slots}, help, paper, name##_f32, name##_f64},
/* clang-format on */
static const optimizer optimizers[] = {
#include "optimizers.def"
};
#undef OPTIMIZER
#define OPTIMIZER(name, ...) ROW_##name,
enum { /* the rows by name, for the one the model's fused sgd_step does */
#include "optimizers.def"
       N_OPTIMIZERS
};
#undef OPTIMIZER

struct rt_optim {
    const nnrt_model *m;
    const rt_options *o;
    void *fixed;  /* the gradients (and the fused step's velocities) */
    void *params; /* the arena the params are read from and updated in: fixed, or one that
                   * several ranks share (rt_optim_share) */
    const optimizer *row;
    step_settings settings; /* lr and t are set at each step */
    int fused;
    void **state[RT_OPTIM_MAX_SLOTS]; /* [slot][param]; NULL for a slot left out */
    char *state_memory;               /* where rt_optim_share placed the state; else NULL */
    double *l1, *l2;                  /* per param; NULL when no param has that penalty */
    unsigned char *frozen;            /* per param (--freeze); NULL when none is */
};

/* The optimizers' names as "sgd, adagrad or adam", with last_sep (" or ") before the last. */
static void names_text(char *buf, size_t size, const char *last_sep) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_OPTIMIZERS && used < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == N_OPTIMIZERS ? last_sep : ", ";
        used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, optimizers[i].name);
    }
}

static const optimizer *find_optimizer(const char *name) {
    for (int i = 0; i < N_OPTIMIZERS; i++)
        if (strcmp(optimizers[i].name, name) == 0) return &optimizers[i];
    return NULL;
}

static const optimizer *need_optimizer(const char *name) {
    const optimizer *row = find_optimizer(name);
    if (row) return row;
    char list[512];
    names_text(list, sizeof list, " or ");
    rt_usage_error("unknown optimizer '%s' (%s)", name, list);
}

/* The value of each setting the row reads: the option's, unless it has none (NAN), then
 * the row's default. */
static step_settings resolve_settings(const optimizer *row, const rt_options *o) {
    step_settings h = {0};
#define RESOLVE(s)                                                                                 \
    if (row->reads.s.read) h.s = isnan((double)o->s) ? row->reads.s.value : (double)o->s;
    OPTIM_SETTINGS(RESOLVE)
#undef RESOLVE
    return h;
}

/* A setting's default in a row, or NULL when the row does not read it or the setting is
 * not an optimizer's. */
static const setting_default *row_default(const optimizer *row, const char *setting) {
#define FIND(s)                                                                                    \
    if (strcmp(setting, #s) == 0) return row->reads.s.read ? &row->reads.s : NULL;
    OPTIM_SETTINGS(FIND)
#undef FIND
    return NULL;
}

int rt_optim_readers(const char *setting, char *buf, size_t size) {
    size_t used = 0;
    int n = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_OPTIMIZERS && used < size; i++)
        if (row_default(&optimizers[i], setting))
            used += (size_t)snprintf(buf + used, size - used, "%s%s", n++ ? ", " : "",
                                     optimizers[i].name);
    return n > 0;
}

int rt_optim_reads(const char *optimizer_name, const char *setting) {
    const optimizer *row = find_optimizer(optimizer_name);
    return row && row_default(row, setting);
}

/* How many rows read the setting, or read it with this default. */
static int count_readers(const char *setting, const double *value) {
    int n = 0;
    for (int i = 0; i < N_OPTIMIZERS; i++) {
        const setting_default *d = row_default(&optimizers[i], setting);
        n += d && (!value || d->value == *value);
    }
    return n;
}

void rt_optim_default_text(const char *setting, const char *optimizer_name, char *buf,
                           size_t size) {
    const optimizer *own = find_optimizer(optimizer_name);
    const setting_default *d = own ? row_default(own, setting) : NULL;
    if (d) {
        snprintf(buf, size, "%g", d->value);
        return;
    }
    /* The value most readers share (the first in table order of a tie) is "others". */
    double common = NAN;
    int most = 0;
    for (int i = 0; i < N_OPTIMIZERS; i++) {
        d = row_default(&optimizers[i], setting);
        if (d && count_readers(setting, &d->value) > most) {
            most = count_readers(setting, &d->value);
            common = d->value;
        }
    }
    if (most == count_readers(setting, NULL)) {
        snprintf(buf, size, "%g", common);
        return;
    }
    if (most < 2) common = NAN; /* nothing shared: each reader's own */
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_OPTIMIZERS && used < size; i++) {
        d = row_default(&optimizers[i], setting);
        if (d && d->value != common)
            used += (size_t)snprintf(buf + used, size - used, "%s%s %g", used ? ", " : "",
                                     optimizers[i].name, d->value);
    }
    if (!isnan(common) && used < size) snprintf(buf + used, size - used, ", others %g", common);
}

void rt_optim_print_list(FILE *out) {
    for (int i = 0; i < N_OPTIMIZERS; i++)
        fprintf(out, "  %-10s %s (%s)\n", optimizers[i].name, optimizers[i].help,
                optimizers[i].paper);
}

/* ---- penalties: "1e-4", "h.W=1e-3,p.W=0", "1e-4,h.W=1e-3" ---- */

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
/* A bare number applies to every weight (a param of rank >= 2); NAME=X to one param, and
 * wins over the bare number whatever the order. */
static double *parse_penalty(const nnrt_model *m, const char *option, const char *spec) {
    if (!spec || !*spec) return NULL;
    double *per = rt_alloc_array((size_t)m->n_params, sizeof *per);
    unsigned char *named = rt_alloc((size_t)m->n_params);
    double all = 0;
    int any = 0, all_given = 0;
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            if (all_given) /* else the last would win, unsaid */
                rt_usage_error("--%s: '%s' gives the weights' number twice", option, spec);
            all = penalty_number(option, p, len);
            all_given = 1;
        } else {
            int32_t i = rt_param_named(m, p, (size_t)(eq - p));
            if (i < 0) {
                char flag[16];
                snprintf(flag, sizeof flag, "--%s", option);
                rt_no_such_param(m, flag, p, (size_t)(eq - p));
            }
            if (named[i]) rt_usage_error("--%s: '%s' is named twice", option, m->params[i].name);
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

/* --freeze NAME[,NAME...]: the params (names or globs) the update leaves alone; NULL when
 * none. Every param frozen in a model without state trains nothing (with state, such as
 * batch norm's running statistics, training still updates it: a way to re-estimate them). */
static unsigned char *parse_freeze(const nnrt_model *m, const char *spec) {
    if (!spec || !*spec) return NULL;
    unsigned char *frozen = rt_alloc((size_t)m->n_params + 1);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) rt_usage_error("--freeze: an empty name in '%s'", spec);
        rt_mark_params(m, "--freeze", p, len, frozen);
        if (!comma) break;
        p = comma + 1;
    }
    int32_t free_params = 0;
    for (int32_t i = 0; i < m->n_params; i++) free_params += !frozen[i];
    if (free_params == 0 && m->n_states == 0)
        rt_usage_error("--freeze %s freezes every param of model '%s', which has no other state: "
                       "training would change nothing ('eval' measures a model as it is)",
                       spec, m->name);
    return frozen;
}

/* ---- state ---- */

static void add_slot(rt_optim *op, int s) {
    const nnrt_model *m = op->m;
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
    for (int s = 0; s < RT_OPTIM_MAX_SLOTS && op->row->slots[s].name; s++)
        if (op->row->slots[s].when == ALWAYS || op->o->momentum > 0) add_slot(op, s);
}

rt_optim *rt_optim_new(const nnrt_model *m, void *fixed, const rt_options *o,
                       enum rt_optim_kind kind) {
    rt_optim *op = rt_alloc(sizeof *op);
    op->m = m;
    op->o = o;
    op->fixed = fixed;
    op->params = fixed;
    op->row = need_optimizer(o->optimizer ? o->optimizer : "sgd");
    op->settings = resolve_settings(op->row, o);
    op->l1 = parse_penalty(m, "l1", o->l1);
    op->l2 = parse_penalty(m, "l2", o->l2);
    op->frozen = parse_freeze(m, o->freeze);
    /* the fused sgd_step updates every param: a frozen one needs the update from gradients */
    op->fused = kind == RT_OPTIM_FUSE_WHEN_ABLE && op->row == &optimizers[ROW_sgd] &&
                !(o->nesterov && o->momentum > 0) && !op->l1 && !op->l2 && o->clip == 0 &&
                !op->frozen;
    if (!op->fused && !m->grad) rt_fatal("model descriptor: no grad entry point");
    make_state(op);
    return op;
}

void rt_optim_free(rt_optim *op) {
    if (!op) return;
    for (int s = 0; s < RT_OPTIM_MAX_SLOTS; s++) {
        if (!op->state[s]) continue;
        for (int32_t i = 0; i < op->m->n_params && !op->fused && !op->state_memory; i++)
            rt_free(op->state[s][i]);
        rt_free(op->state[s]);
    }
    rt_free(op->l1);
    rt_free(op->l2);
    rt_free(op->frozen);
    rt_free(op);
}

int rt_optim_fused(const rt_optim *op) {
    return op->fused;
}
int rt_optim_slots(const rt_optim *op) {
    int n = 0;
    while (n < RT_OPTIM_MAX_SLOTS && op->row->slots[n].name) n++;
    return n;
}
const char *rt_optim_slot_name(const rt_optim *op, int s) {
    return op->row->slots[s].name;
}
int rt_optim_slot_nonnegative(const rt_optim *op, int s) {
    return op->row->slots[s].sign == NEVER_NEGATIVE;
}
void *rt_optim_state(const rt_optim *op, int s, int32_t param) {
    return op->state[s] ? op->state[s][param] : NULL;
}

/* ---- one step ---- */

static void *param_ptr(const rt_optim *op, int32_t i) {
    return rt_elem_ptr(op->params, op->m->params[i].offset, op->m->f64);
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

/* The params the update leaves alone are checked too, as every param is after a fused step. */
int32_t rt_optim_nonfinite_without_gradient(const rt_optim *op) {
    const nnrt_model *m = op->m;
    for (int32_t i = 0; i < m->n_params; i++)
        if (m->params[i].grad_offset < 0 &&
            KERNEL(m->f64, nonfinite, param_ptr(op, i), m->params[i].numel))
            return i;
    return -1;
}

/* A scan of every param after every fused step would cost a pass over the weights each
 * step. The step's loss is checked instead (B numbers); once it is not finite, the params
 * are scanned to name the one that broke. A blow-up shows one step later this way, as the
 * loss of the step after it. */
int32_t rt_optim_loss_outcome(const rt_optim *op, double cost) {
    return op->fused && !isfinite(cost) ? nonfinite_param(op) : -1;
}

double rt_optim_momentum(const rt_optim *op) {
    return op->o->momentum;
}

/* ---- the update by parts ----
 *
 * The elements of the params that have a gradient, counted in param order, are the update's
 * elements; a part is a range of them. One update is: every part's penalties and sum of
 * squares; the clipping scale from the sum of them all; every part's scaling and the row's
 * loop, which checks each gradient and each new param as it goes. rt_optim_apply runs it as
 * one part; workers run a part each.
 *
 * A gradient that is not finite is found in the update's loop, not before it, so the part is
 * then partly updated. No one reads those params: the step is a fault, which stops the run
 * (or marks the search trial failed), and nothing is saved from a failed step. Clipping does
 * not hide one: its sum of squares is then nan (the scale stays 1) or inf (the scale is 0,
 * and inf times 0 is nan). */

/* Calls visit(op, i, first, count, arg) for each param i that has elements in [lo, hi): its
 * elements first .. first + count - 1. Stops at and returns a visit's result >= 0, else -1. */
typedef int32_t visit_fn(rt_optim *op, int32_t i, int64_t first, int64_t count, void *arg);
static int32_t each_segment(rt_optim *op, int64_t lo, int64_t hi, visit_fn *visit, void *arg) {
    const nnrt_model *m = op->m;
    int64_t start = 0;
    for (int32_t i = 0; i < m->n_params && start < hi; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->grad_offset < 0) continue;
        int64_t end = start + t->numel;
        int64_t a = lo > start ? lo : start, b = hi < end ? hi : end;
        /* a frozen param keeps its elements' places, so that parts are cut as without
         * --freeze, but nothing visits them: no penalty, clipping sum or update */
        if (a < b && !(op->frozen && op->frozen[i])) {
            int32_t r = visit(op, i, a - start, b - a, arg);
            if (r >= 0) return r;
        }
        start = end;
    }
    return -1;
}

static void *param_at(const rt_optim *op, int32_t i, int64_t e) {
    return rt_elem_ptr(op->params, op->m->params[i].offset + e, op->m->f64);
}
static void *grad_at(const rt_optim *op, int32_t i, int64_t e) {
    return rt_elem_ptr(op->fixed, op->m->params[i].grad_offset + e, op->m->f64);
}
static void *slot_at(const rt_optim *op, int s, int32_t i, int64_t e) {
    return op->state[s] && op->state[s][i] ? rt_elem_ptr(op->state[s][i], e, op->m->f64) : NULL;
}

/* Penalties into the gradients; adds the sum of squares (for clipping) to *(double *)arg. */
static int32_t prepare_segment(rt_optim *op, int32_t i, int64_t first, int64_t n, void *arg) {
    const nnrt_model *m = op->m;
    void *g = grad_at(op, i, first);
    double l1 = op->l1 ? op->l1[i] : 0, l2 = op->l2 ? op->l2[i] : 0;
    if (l1 != 0 || l2 != 0) KERNEL(m->f64, penalise, g, param_at(op, i, first), n, l1, l2);
    if (op->o->clip > 0) *(double *)arg += KERNEL(m->f64, sum_squares, g, n);
    return -1;
}

/* An update of a part: the clipping scale, and the first param found not finite after it. */
typedef struct part_update {
    double scale;
    int32_t *bad_value;
} part_update;

/* The clipping scale, then the row's loop. Stops at (returns) a param whose gradient is not
 * finite; notes the first whose value is not finite after the loop. */
static int32_t update_segment(rt_optim *op, int32_t i, int64_t first, int64_t n, void *arg) {
    const nnrt_model *m = op->m;
    part_update *u = arg;
    void *p = param_at(op, i, first), *g = grad_at(op, i, first);
    if (u->scale != 1) KERNEL(m->f64, scale, g, n, u->scale);
    void *s0 = slot_at(op, 0, i, first), *s1 = slot_at(op, 1, i, first);
    int found = m->f64 ? op->row->update_f64(p, g, s0, s1, n, &op->settings)
                       : op->row->update_f32(p, g, s0, s1, n, &op->settings);
    if (found & GRADIENT_NOT_FINITE) return i;
    if ((found & PARAM_NOT_FINITE) && *u->bad_value < 0) *u->bad_value = i;
    return -1;
}

int64_t rt_optim_elems(const rt_optim *op) {
    int64_t n = 0;
    for (int32_t i = 0; i < op->m->n_params; i++)
        if (op->m->params[i].grad_offset >= 0) n += op->m->params[i].numel;
    return n;
}

void rt_optim_begin(rt_optim *op, double lr, int64_t t) {
    if (op->fused) rt_fatal("internal error: an update from gradients on a fused optimizer");
    op->settings.lr = lr;
    op->settings.t = (double)t;
}

double rt_optim_prepare_part(rt_optim *op, int64_t lo, int64_t hi) {
    double sum_sq = 0;
    if (op->l1 || op->l2 || op->o->clip > 0) each_segment(op, lo, hi, prepare_segment, &sum_sq);
    return sum_sq;
}

int rt_optim_clips(const rt_optim *op) {
    return op->o->clip > 0;
}

double rt_optim_clip_scale(const rt_optim *op, double sum_sq) {
    double norm = sqrt(sum_sq);
    return op->o->clip > 0 && norm > op->o->clip ? op->o->clip / norm : 1;
}

int32_t rt_optim_update_part(rt_optim *op, int64_t lo, int64_t hi, double scale,
                             int32_t *bad_value) {
    part_update u = {scale, bad_value};
    return each_segment(op, lo, hi, update_segment, &u);
}

int32_t rt_optim_step(rt_optim *op, nnrt_ctx *ctx, double lr, int64_t t, enum rt_fault *kind) {
    *kind = RT_FAULT_VALUE;
    if (op->fused) { /* its loss is checked by the caller, who reads it anyway */
        op->m->sgd_step(ctx, lr, op->o->momentum);
        return -1;
    }
    op->m->grad(ctx);
    return rt_optim_apply(op, lr, t, kind);
}

int32_t rt_optim_apply(rt_optim *op, double lr, int64_t t, enum rt_fault *kind) {
    rt_optim_begin(op, lr, t);
    int64_t all = rt_optim_elems(op);
    double scale = rt_optim_clip_scale(op, rt_optim_prepare_part(op, 0, all));
    int32_t bad_value = -1, bad = rt_optim_update_part(op, 0, all, scale, &bad_value);
    *kind = RT_FAULT_GRADIENT;
    if (bad >= 0) return bad;
    *kind = RT_FAULT_VALUE;
    return bad_value >= 0 ? bad_value : rt_optim_nonfinite_without_gradient(op);
}

/* ---- ranks that share memory ----
 *
 * The state is placed in memory the caller gives, a param's slots one after the other,
 * each padded to 16 elements (64 bytes): ranks laid out alike, so that one rank finds
 * another's state of any element at the same place in the other's memory. */

static size_t padded_bytes(const rt_optim *op, int64_t numel) {
    return (size_t)((numel + 15) / 16 * 16) * rt_elem_size(op->m->f64);
}

size_t rt_optim_state_bytes(const rt_optim *op) {
    size_t bytes = 0;
    for (int s = 0; s < RT_OPTIM_MAX_SLOTS; s++)
        for (int32_t i = 0; op->state[s] && i < op->m->n_params; i++)
            if (op->state[s][i]) bytes += padded_bytes(op, op->m->params[i].numel);
    return bytes;
}

void rt_optim_share(rt_optim *op, void *fixed, void *params, void *state_memory) {
    if (op->fused || op->state_memory)
        rt_fatal("internal error: sharing a fused optimizer, or one shared already");
    op->fixed = fixed;
    op->params = params;
    op->state_memory = state_memory;
    size_t at = 0;
    for (int s = 0; s < RT_OPTIM_MAX_SLOTS; s++)
        for (int32_t i = 0; op->state[s] && i < op->m->n_params; i++) {
            if (!op->state[s][i]) continue;
            int64_t n = op->m->params[i].numel;
            void *place = op->state_memory + at;
            memcpy(place, op->state[s][i], (size_t)n * rt_elem_size(op->m->f64));
            rt_free(op->state[s][i]);
            op->state[s][i] = place;
            at += padded_bytes(op, n);
        }
}

/* Copies the state of one segment from the other rank's memory (*(const char **)arg). */
static int32_t copy_state_segment(rt_optim *op, int32_t i, int64_t first, int64_t n, void *arg) {
    const char *from = *(const char **)arg;
    size_t esize = rt_elem_size(op->m->f64);
    for (int s = 0; s < RT_OPTIM_MAX_SLOTS; s++) {
        char *mine = slot_at(op, s, i, first);
        if (mine) memcpy(mine, from + (mine - op->state_memory), (size_t)n * esize);
    }
    return -1;
}

void rt_optim_copy_state_part(rt_optim *op, const void *from, int64_t lo, int64_t hi) {
    if (!op->state_memory) rt_fatal("internal error: copying the state of an unshared optimizer");
    const char *base = from;
    each_segment(op, lo, hi, copy_state_segment, &base);
}

/* ---- schedules ---- */

int rt_schedule_constant(const rt_options *o) {
    return o->warmup <= 0 && (!o->schedule || strcmp(o->schedule, "constant") == 0);
}

double rt_schedule_lr(const rt_options *o, int64_t epoch, int64_t epochs) {
    const double pi = 3.14159265358979323846;
    if (epoch <= o->warmup) return o->lr * (double)epoch / (double)o->warmup;
    int64_t k = epoch - o->warmup - 1; /* epochs since the warm-up, from 0 */
    const char *s = o->schedule ? o->schedule : "constant";
    if (strcmp(s, "constant") == 0) return o->lr; /* the default, asked every epoch */
    if (strcmp(s, "step") == 0) return o->lr * pow(o->step_factor, (double)(k / o->step_every));
    if (strcmp(s, "exponential") == 0) return o->lr * pow(o->gamma, (double)k);
    if (strcmp(s, "cosine") == 0) {
        int64_t span = epochs - o->warmup;
        if (span < 1) span = 1;
        return o->min_lr + (o->lr - o->min_lr) * (1 + cos(pi * (double)k / (double)span)) / 2;
    }
    return o->lr;
}
