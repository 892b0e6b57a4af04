/* gradcheck.c: the gradcheck command (see gradcheck.h; formats in docs/runtime.md).
 *
 * grad() is the compiler's derivative of the model. Each param element's derived value d
 * is compared with n, a central difference of the cost computed through forward(), at two
 * points: the initial weights, where training starts, and a random point, where no
 * initialiser's zeros or symmetries can hide a wrong term. Only f64 models: in f32 rounding
 * alone moves a difference quotient by far more than the 1e-6 asked of it. */
#include "gradcheck.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "model.h"
#include "rng.h"
#include "train.h"
#include "util.h"

#define GC_ROWS      8    /* rows in the batch of a model with inputs */
#define GC_STEP      1e-3 /* the first step: h = GC_STEP * max(1, |p|) */
#define GC_STEPS     3    /* steps tried, each a tenth of the one before */
#define GC_FLOOR     1e-4 /* relative errors of smaller gradients are measured against this */
#define GC_TOLERANCE 1e-6 /* as the f64 finite-difference tests of the ops */

/* The model, its arenas, and the batch, copied in before every call: the checker trusts
 * nothing of what a model under test leaves in its arenas. */
typedef struct checker {
    const nnrt_model *m;
    nnrt_ctx ctx;
    rt_dataset rows; /* the batch; unused by a model without inputs */
    double *derived; /* grad() of every param element, in descriptor order */
} checker;

/* ---- the cost and its derivatives ---- */

static void feed(checker *c) {
    if (c->m->n_inputs > 0) rt_fill_batch(c->m, &c->ctx, &c->rows, NULL, 0, c->rows.rows, 1);
}

/* The cost grad() differentiates: the batch mean of the per-sample losses. */
static double cost(checker *c) {
    feed(c);
    c->m->forward(&c->ctx);
    return rt_batch_cost(c->m, &c->ctx);
}

/* Copied out of the grad buffers, because the forward passes that follow may reuse them.
 * A param without a grad buffer has derivative 0 by nnrt.h. */
static void derive(checker *c) {
    feed(c);
    c->m->grad(&c->ctx);
    const double *fixed = c->ctx.fixed;
    int64_t k = 0;
    for (int32_t i = 0; i < c->m->n_params; i++) {
        const nnrt_tensor *t = &c->m->params[i];
        for (int64_t e = 0; e < t->numel; e++)
            c->derived[k++] = t->grad_offset < 0 ? 0.0 : fixed[t->grad_offset + e];
    }
}

enum outcome { MATCH, MISMATCH, KINK };

typedef struct element {
    double derived, numeric, abs_err, rel_err;
    enum outcome outcome;
} element;

/* One step's estimate. The fourth-order difference (-f(2h) + 8f(h) - 8f(-h) + f(-2h)) / 12h
 * lets the step be large enough that rounding in the cost stays far below the tolerance.
 * `bend` is how much the slopes of the stencil's four intervals s0..s3 bend: the larger of
 * |s2 - 2s1 + s0| and |s3 - 2s2 + s1|. Smooth, it is h^2 times the third derivative; a
 * corner anywhere in the stencil whose slope jumps by J makes it at least J/3, and moves
 * the estimate by at most half of it. */
typedef struct estimate {
    double numeric, bend;
    int finite;
} estimate;

static estimate difference(checker *c, double *p, double h, double base) {
    double value = *p, f[5] = {0, 0, base, 0, 0};
    for (int k = 0; k < 5; k++) {
        if (k == 2) continue;
        *p = value + (k - 2) * h;
        f[k] = cost(c);
    }
    *p = value;
    estimate e;
    e.numeric = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h);
    double s[4];
    for (int k = 0; k < 4; k++) s[k] = (f[k + 1] - f[k]) / h;
    e.bend = fmax(fabs(s[2] - 2 * s[1] + s[0]), fabs(s[3] - 2 * s[2] + s[1]));
    e.finite = isfinite(f[0]) && isfinite(f[1]) && isfinite(f[3]) && isfinite(f[4]);
    return e;
}

/* Keeps the step's estimate when it is the first or agrees better with d than the earlier
 * ones (a NaN error never does). */
static void keep_best(element *el, double numeric, int first) {
    double abs_err = fabs(el->derived - numeric);
    double rel_err = abs_err / fmax(GC_FLOOR, fmax(fabs(el->derived), fabs(numeric)));
    if (!first && !(rel_err < el->rel_err)) return;
    el->numeric = numeric;
    el->abs_err = abs_err;
    el->rel_err = rel_err;
}

/* Compares d with differences at the first step, then at smaller ones: a kink (relu, abs)
 * that lies inside the first stencil but not at p spoils that estimate, not a smaller one.
 * When no step agrees, the element sits at a kink if the slopes within the smallest stencil
 * bend by at least half the error, enough for a corner to explain it (a smooth cost bends
 * there by about 1e-10 times its third derivative, which excuses no real error); otherwise
 * d is wrong. A cost that is not finite near p (the edge of its domain) counts as a
 * kink too: there is no derivative to compare. */
static element check_element(checker *c, double *p, double derived, double base) {
    element el = {derived, 0, 0, 0, MISMATCH};
    double h = GC_STEP * fmax(1.0, fabs(*p)), last_bend = 0;
    for (int s = 0; s < GC_STEPS; s++, h /= 10) {
        double exact_h = (*p + h) - *p; /* a step p + h represents exactly */
        estimate e = difference(c, p, exact_h, base);
        if (!e.finite) {
            el.outcome = KINK;
            return el;
        }
        keep_best(&el, e.numeric, s == 0);
        if (el.rel_err <= GC_TOLERANCE) {
            el.outcome = MATCH;
            return el;
        }
        last_bend = e.bend;
    }
    if (el.abs_err <= 2 * last_bend) el.outcome = KINK;
    return el;
}

/* ---- one point ---- */

typedef struct param_result {
    double max_abs, max_rel; /* over the elements compared (kinks are not) */
    int64_t compared, kinks, mismatches;
    int64_t worst; /* the mismatching element with the largest relative error, or -1 */
    double worst_derived, worst_numeric, worst_rel;
} param_result;

static void add_element(param_result *r, int64_t index, element el) {
    if (el.outcome == KINK) {
        r->kinks++;
        return;
    }
    r->compared++;
    if (!(el.abs_err <= r->max_abs)) r->max_abs = el.abs_err; /* a NaN stays, to be seen */
    if (!(el.rel_err <= r->max_rel)) r->max_rel = el.rel_err;
    if (el.outcome != MISMATCH) return;
    r->mismatches++;
    if (r->worst < 0 || !(el.rel_err <= r->worst_rel)) {
        r->worst = index;
        r->worst_derived = el.derived;
        r->worst_numeric = el.numeric;
        r->worst_rel = el.rel_err;
    }
}

/* Every element of one param at the current point; derived holds its grad() values. */
static param_result check_param(checker *c, const nnrt_tensor *t, const double *derived,
                                double base) {
    param_result r = {0, 0, 0, 0, 0, -1, 0, 0, 0};
    double *values = rt_elem_ptr(c->ctx.fixed, t->offset, 1);
    for (int64_t e = 0; e < t->numel; e++)
        add_element(&r, e, check_element(c, &values[e], derived[e], base));
    return r;
}

/* ---- the table ---- */

static void shape_text(const nnrt_tensor *t, char *buf, size_t size) {
    if (t->rank == 0) {
        snprintf(buf, size, "scalar");
        return;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int32_t i = 0; i < t->rank; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)t->dims[i]);
    snprintf(buf + used, size - used, "]");
}

typedef struct layout {
    int name_width, shape_width;
} layout;

static layout table_layout(const nnrt_model *m) {
    layout l = {(int)strlen("param"), (int)strlen("shape")};
    for (int32_t i = 0; i < m->n_params; i++) {
        char shape[128];
        shape_text(&m->params[i], shape, sizeof shape);
        int name_len = (int)strlen(m->params[i].name), shape_len = (int)strlen(shape);
        if (name_len > l.name_width) l.name_width = name_len;
        if (shape_len > l.shape_width) l.shape_width = shape_len;
    }
    return l;
}

static void print_row(layout l, const nnrt_tensor *t, const param_result *r) {
    char shape[128], abs_err[32] = "-", rel_err[32] = "-", verdict[64];
    shape_text(t, shape, sizeof shape);
    if (r->compared > 0) {
        snprintf(abs_err, sizeof abs_err, "%.2e", r->max_abs);
        snprintf(rel_err, sizeof rel_err, "%.2e", r->max_rel);
    }
    const char *word = t->surrogate ? "surrogate" : r->mismatches ? "FAIL" : "ok";
    if (r->kinks)
        snprintf(verdict, sizeof verdict, "%s (%lld kink%s skipped)", word, (long long)r->kinks,
                 r->kinks == 1 ? "" : "s");
    else
        snprintf(verdict, sizeof verdict, "%s", word);
    printf("  %-*s  %-*s  %11s  %11s  %s\n", l.name_width, t->name, l.shape_width, shape, abs_err,
           rel_err, verdict);
}

/* A line under the table for each failing param: its worst element. */
static void print_worst(const nnrt_tensor *t, const param_result *r) {
    if (t->surrogate || r->mismatches == 0) return;
    printf("  %s[%lld]: d = %.9g, n = %.9g (its worst element)\n", t->name, (long long)r->worst,
           r->worst_derived, r->worst_numeric);
}

/* What the whole run found, over both points. */
typedef struct tally {
    int points_checked;
    int any_kinks, any_surrogates;
    unsigned char *failed; /* per param: failed at some point */
} tally;

/* Checks every param at the weights now in the fixed arena, under `heading`. */
static void check_point(checker *c, const char *heading, tally *tl) {
    const nnrt_model *m = c->m;
    printf("\n%s:\n", heading);
    derive(c);
    double base = cost(c);
    if (!isfinite(base)) {
        printf("  the cost here is %g, so this point is not checked\n", base);
        return;
    }
    tl->points_checked++;
    layout l = table_layout(m);
    param_result *results = rt_alloc_array((size_t)m->n_params, sizeof *results);
    printf("  %-*s  %-*s  %11s  %11s  %s\n", l.name_width, "param", l.shape_width, "shape",
           "max abs err", "max rel err", "verdict");
    const double *derived = c->derived;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        results[i] = check_param(c, t, derived, base);
        derived += t->numel;
        print_row(l, t, &results[i]);
        tl->any_kinks |= results[i].kinks > 0;
        tl->any_surrogates |= t->surrogate != 0;
        if (!t->surrogate && results[i].mismatches) tl->failed[i] = 1;
    }
    for (int32_t i = 0; i < m->n_params; i++) print_worst(&m->params[i], &results[i]);
    rt_free(results);
}

/* ---- the batch ---- */

/* Why the descriptor's own data cannot be read, or NULL when it can. */
static const char *default_data_problem(const nnrt_model *m, char *buf, size_t size) {
    const nnrt_train_defaults *t = &m->train;
    int idx = t->data_kind && strcmp(t->data_kind, "idx") == 0;
    if (!t->data_kind || !t->data_path || (idx && !t->data_path2))
        return "the model names no data file";
    const char *paths[2] = {t->data_path, idx ? t->data_path2 : NULL};
    for (int i = 0; i < 2; i++)
        if (paths[i] && access(paths[i], R_OK) != 0) {
            snprintf(buf, size, "cannot read %s: %s", paths[i], strerror(errno));
            return buf;
        }
    return NULL;
}

/* Token ids (nnrt_tensor.ids): whole numbers 0..ids-1, as take and one_hot accept. */
static void random_ids(const nnrt_tensor *t, double *row, rt_rng *rng) {
    for (int64_t e = 0; e < t->numel; e++) row[e] = (double)rt_rng_below(rng, (uint64_t)t->ids);
}

/* One random row's inputs, each input tensor in turn: token ids where the input holds them,
 * else uniform(-1, 1). */
static void random_inputs(const nnrt_model *m, double *row, rt_rng *rng) {
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const nnrt_tensor *t = &m->inputs[i];
        if (t->ids > 0)
            random_ids(t, row, rng);
        else
            for (int64_t e = 0; e < t->numel; e++) row[e] = -1.0 + 2.0 * rt_rng_uniform(rng);
        row += t->numel;
    }
}

/* One random row's targets, each target tensor in turn: token ids where it holds them
 * (a target that reaches one_hot); a random class, one-hot (0 or 1 for
 * a one-value target), for a classification model; else uniform(0, 1), valid for any loss. */
static void random_targets(const nnrt_model *m, double *row, rt_rng *rng) {
    for (int32_t i = 0; i < m->n_targets; i++) {
        int64_t n = m->targets[i].numel;
        if (m->targets[i].ids > 0) {
            random_ids(&m->targets[i], row, rng);
        } else if (!m->train.classification) {
            for (int64_t e = 0; e < n; e++) row[e] = rt_rng_uniform(rng);
        } else if (n == 1) {
            row[0] = (double)rt_rng_below(rng, 2);
        } else {
            for (int64_t e = 0; e < n; e++) row[e] = 0.0;
            row[rt_rng_below(rng, (uint64_t)n)] = 1.0;
        }
        row += n;
    }
}

static void random_rows(const nnrt_model *m, int64_t seed, rt_dataset *d) {
    d->rows = GC_ROWS;
    d->input_elems = rt_input_elems(m);
    d->target_elems = rt_target_elems(m);
    double *inputs = rt_alloc_array((size_t)(GC_ROWS * d->input_elems), sizeof(double));
    double *targets = rt_alloc_array((size_t)(GC_ROWS * d->target_elems), sizeof(double));
    rt_rng rng;
    rt_rng_seed(&rng, seed, RT_STREAM_GRADCHECK_ROWS);
    for (int64_t r = 0; r < GC_ROWS; r++) {
        random_inputs(m, inputs + r * d->input_elems, &rng);
        random_targets(m, targets + r * d->target_elems, &rng);
    }
    d->inputs = inputs;
    d->targets = targets;
}

/* The data's name for the batch line: --data as given, or the descriptor's file(s). */
static const char *data_name(const nnrt_model *m, const rt_options *o, char *buf, size_t size) {
    if (o->data) return rt_is_dash(o->data) ? "standard input" : o->data;
    if (!m->train.data_path2) return m->train.data_path;
    snprintf(buf, size, "%s,%s", m->train.data_path, m->train.data_path2);
    return buf;
}

/* How random_targets draws this model's targets, for the batch line. */
static const char *random_targets_text(const nnrt_model *m) {
    if (!m->train.classification) return "uniform(0, 1)";
    int one_value = 0, several = 0;
    for (int32_t i = 0; i < m->n_targets; i++) {
        if (m->targets[i].ids > 0) continue; /* token ids: append_token_ids_text says */
        one_value |= m->targets[i].numel == 1;
        several |= m->targets[i].numel > 1;
    }
    if (!several && !one_value) return "token ids";
    if (!several) return "random classes, 0 or 1";
    return one_value ? "random classes, one-hot (0 or 1 for a one-value target)"
                     : "random classes, one-hot";
}

/* "; token ids instead: x 0..59, y 0..59" for the inputs and targets random_rows draws as
 * whole ids (nnrt_tensor.ids); nothing when there are none. */
static void append_token_ids_text(const nnrt_model *m, char *out, size_t size) {
    const char *sep = "; token ids instead: ";
    for (int pass = 0; pass < 2; pass++) {
        const nnrt_tensor *t = pass ? m->targets : m->inputs;
        int32_t n = pass ? m->n_targets : m->n_inputs;
        for (int32_t i = 0; i < n; i++) {
            if (t[i].ids <= 0) continue;
            int w = snprintf(out, size, "%s%s 0..%lld", sep, t[i].name, (long long)t[i].ids - 1);
            if (w < 0 || (size_t)w >= size) return;
            out += w;
            size -= (size_t)w;
            sep = ", ";
        }
    }
}

/* Fills c->rows, and `about` with where they come from: the first GC_ROWS rows of the data
 * when there is data to read (an explicit --data must be readable), else random rows. */
static void choose_rows(checker *c, const rt_options *o, char *about, size_t size) {
    const nnrt_model *m = c->m;
    if (m->n_inputs == 0) {
        snprintf(about, size, "none, the model has no inputs");
        return;
    }
    char problem_buf[4200], name_buf[8400];
    const char *problem = o->data ? NULL : default_data_problem(m, problem_buf, sizeof problem_buf);
    if (problem) {
        random_rows(m, o->seed, &c->rows);
        int n = snprintf(about, size, "%d random rows (%s): inputs uniform(-1, 1), targets %s",
                         GC_ROWS, problem, random_targets_text(m));
        if (n > 0 && (size_t)n < size) append_token_ids_text(m, about + n, size - (size_t)n);
        return;
    }
    rt_load_training_data(m, o->data, &c->rows);
    if (c->rows.rows > GC_ROWS) c->rows.rows = GC_ROWS;
    snprintf(about, size, "the first %lld rows of %s", (long long)c->rows.rows,
             data_name(m, o, name_buf, sizeof name_buf));
}

/* ---- the command ---- */

static void random_point(const nnrt_model *m, void *fixed, int64_t seed) {
    rt_rng rng;
    rt_rng_seed(&rng, seed, RT_STREAM_GRADCHECK_POINT);
    for (int32_t i = 0; i < m->n_params; i++)
        for (int64_t e = 0; e < m->params[i].numel; e++)
            rt_set(fixed, m->params[i].offset + e, 1, -1.0 + 2.0 * rt_rng_uniform(&rng));
}

static void print_notes(const tally *tl) {
    if (tl->any_surrogates || tl->any_kinks) putchar('\n');
    if (tl->any_surrogates)
        printf("surrogate: the param's gradient comes from a hand-written surrogate rule (such "
               "as a straight-through estimator), not the derivative of the loss; it is shown, "
               "not counted as a failure.\n");
    if (tl->any_kinks)
        printf("kink: the one-sided differences disagree there (relu or abs at its corner, or "
               "the edge of the loss's domain): no derivative to compare, skipped.\n");
}

/* ", and 2 surrogate params are not checked" */
static const char *surrogate_note(int surrogates) {
    static char buf[96];
    snprintf(buf, sizeof buf, " (%d surrogate param%s not checked)", surrogates,
             surrogates == 1 ? "" : "s");
    return buf;
}

/* The summary line and the exit status. */
static int summarise(const nnrt_model *m, const tally *tl) {
    putchar('\n');
    if (tl->points_checked == 0) {
        printf("gradcheck: nothing checked: the cost is not finite at either point\n");
        return RT_EXIT_FAILURE;
    }
    int counted = 0, failed = 0;
    for (int32_t i = 0; i < m->n_params; i++) {
        counted += !m->params[i].surrogate;
        failed += tl->failed[i];
    }
    int surrogates = m->n_params - counted;
    if (failed == 0 && counted == 0) {
        printf("gradcheck: no param to check: the gradients of all %d come from surrogate rules\n",
               surrogates);
        return 0;
    }
    if (failed == 0) {
        printf("gradcheck: all %d params match%s\n", counted,
               surrogates ? surrogate_note(surrogates) : "");
        return 0;
    }
    printf("gradcheck: %d of %d params FAIL\n", failed, counted);
    return RT_EXIT_FAILURE;
}

int rt_cmd_gradcheck(const nnrt_model *m, const rt_options *o) {
    if (!m->f64)
        rt_usage_error(
            "gradcheck needs a model compiled with --f64 (nnc gradcheck FILE.nn does that)");
    if (!m->grad) rt_fatal("model descriptor: no grad entry point");
    int64_t total = 0;
    for (int32_t i = 0; i < m->n_params; i++) total += m->params[i].numel;
    checker c = {m, {0}, {0}, rt_alloc_array((size_t)total, sizeof(double))};
    char about[8600]; /* choose_rows reads the data first: its errors leave stdout empty */
    choose_rows(&c, o, about, sizeof about);
    printf("gradcheck of model '%s' (f64), seed %lld\nbatch: %s\n", m->name, (long long)o->seed,
           about);
    printf("d: grad(); n: central difference of the cost (the batch's mean loss) through "
           "forward()\nok when |d - n| / max(|d|, |n|, %g) <= %g\n",
           GC_FLOOR, GC_TOLERANCE);

    void *fixed = rt_new_fixed_arena(m);
    c.ctx = rt_new_ctx(m, fixed, m->n_inputs > 0 ? c.rows.rows : 1);
    /* Dropout on, as in training, with one noise_seed for every grad() and forward(): the
     * masks stay put while the params move, so the cost is a function of the params alone.
     * NNRT_TRAINING, not a training step: grad() leaves the states alone. */
    rt_rng noise;
    rt_rng_seed(&noise, o->seed, RT_STREAM_NOISE);
    c.ctx.training = NNRT_TRAINING;
    c.ctx.noise_seed = rt_rng_next(&noise);
    c.ctx.dropout_keep = rt_dropout_keep(o); /* the train block's dropout, as train uses */
    tally tl = {0, 0, 0, rt_alloc((size_t)m->n_params)};
    char heading[128];
    rt_start_weights(m, fixed, o); /* where train starts: --set of the train block too */
    snprintf(heading, sizeof heading, "at the initial weights (the initialisers, seed %lld)",
             (long long)o->seed);
    check_point(&c, heading, &tl);
    random_point(m, fixed, o->seed);
    snprintf(heading, sizeof heading,
             "at a random point (every param element uniform(-1, 1), seed %lld)",
             (long long)o->seed);
    check_point(&c, heading, &tl);
    print_notes(&tl);
    rt_free_ctx_varying(&c.ctx);
    return summarise(m, &tl);
}
