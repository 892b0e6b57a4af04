/* search.c: hyperparameter search (see search.h). The data is loaded (and standardised)
 * once; each trial copies the options, sets its values as the command line would (so each
 * is checked the same way), trains quietly from the same initial weights and is scored on
 * the validation rows: the mean over the folds with --folds, the final loss for a model
 * without inputs. A trial whose loss goes non-finite ranks last instead of ending the
 * search. The values come from a grid, from random draws, or from TPE (tpe.h), which draws
 * where the best trials so far are. */
#include "search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "files.h"
#include "model.h"
#include "plot.h"
#include "rng.h"
#include "text.h"
#include "tpe.h"
#include "train.h"
#include "util.h"

#define GRID_POINTS 3 /* points of a range on the grid unless LO..HI:K says */

/* One option that varies: a list of values, or a range. */
typedef struct dim {
    const char *name;
    int kind; /* 'r', 'i' or 0 (words, on|off): rt_option_number_kind */
    int is_range, log;
    double lo, hi;
    int points;    /* grid points of a range */
    char *prefix;  /* --set x=-1..1: "x=", written before each value; else "" */
    char **values; /* a list's values */
    int n_values;
} dim;

typedef struct trial {
    char **values; /* one per dim, as set */
    double *at;    /* one per dim: the number set, or the index of the list's value */
    int ok;
    /* On the validation rows (the mean over the folds), or the final loss without inputs. */
    double loss, accuracy;
    double loss_std, accuracy_std; /* over the folds (0 without) */
    double score;                  /* lower is better: the loss, or minus the accuracy */
    int64_t number;                /* from 0, in the order the trials ran */
    int repeat;                    /* the settings of an earlier trial, whose results it took */
} trial;

/* --folds K: each row's fold, and the rows of the run under way (made as each fold runs, so
 * that memory stays O(rows) whatever K); with --standardize, the inputs as loaded and the
 * statistics of the rows the run trains on, applied to a copy of them before it trains. */
typedef struct fold_plan {
    int64_t k; /* 0: no folds */
    int64_t *fold_of, *train_rows, *held_rows;
    void *raw_inputs; /* NULL without --standardize */
    size_t input_bytes;
    rt_stats stats;
} fold_plan;

enum strategy { GRID, RANDOM, TPE };

typedef struct search {
    const nnrt_model *m;
    const rt_options *o; /* the command line, with search's default validation fraction */
    enum strategy strategy;
    dim *dims;
    int n_dims;
    rt_train_data data;
    fold_plan folds;
    trial *trials;
    int64_t n;
    rt_rng rng;
    void *fixed;
    int by_accuracy, classify, has_inputs;
} search;

static char **split_list(const char *spec, const char *prefix, int *n) {
    int count = 1;
    for (const char *p = spec; *p; p++) count += *p == ',';
    char **out = rt_alloc_array((size_t)count, sizeof *out);
    *n = 0;
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) rt_usage_error("search: an empty value in '%s'", spec);
        out[*n] = rt_alloc(strlen(prefix) + len + 1);
        memcpy(out[*n], prefix, strlen(prefix));
        memcpy(out[(*n)++] + strlen(prefix), p, len);
        if (!comma) break;
        p = comma + 1;
    }
    return out;
}

static double range_number(const char *name, const char *text, size_t len, const char *spec) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) rt_usage_error("search: --%s: bad range '%s'", name, spec);
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v)) rt_usage_error("search: --%s: '%s' is not a number", name, buf);
    return v;
}

/* The ends of a range of whole numbers: every whole number up to 2^53 is a double, and
 * a trial's value is a double rounded to the nearest. */
#define MAX_WHOLE_RANGE 9007199254740992.0 /* 2^53 */

/* LO..HI, then optional :log and :K in either order, each at most once. */
static void parse_range(dim *d, const char *spec) {
    const char *dots = strstr(spec, ".."), *colon = strchr(dots, ':');
    size_t hi_len = colon ? (size_t)(colon - dots - 2) : strlen(dots + 2);
    d->lo = range_number(d->name, spec, (size_t)(dots - spec), spec);
    d->hi = range_number(d->name, dots + 2, hi_len, spec);
    d->points = 0;
    while (colon) {
        const char *next = strchr(colon + 1, ':');
        size_t len = next ? (size_t)(next - colon - 1) : strlen(colon + 1);
        int is_log = len == 3 && strncmp(colon + 1, "log", 3) == 0;
        if (is_log ? d->log : d->points > 0)
            rt_usage_error("search: --%s: '%s' gives %s twice", d->name, spec,
                           is_log ? ":log" : "the grid's points");
        if (is_log) {
            d->log = 1;
        } else {
            double k = range_number(d->name, colon + 1, len, spec);
            if (k != floor(k) || k < 1 || k > RT_MAX_TRIALS)
                rt_usage_error("search: --%s: the grid's points (:K) must be a whole number from "
                               "1 to %d, got '%.*s'",
                               d->name, RT_MAX_TRIALS, (int)len, colon + 1);
            d->points = (int)k;
        }
        colon = next;
    }
    if (d->points == 0) d->points = GRID_POINTS;
    if (!(d->lo <= d->hi)) rt_usage_error("search: --%s: %g..%g is empty", d->name, d->lo, d->hi);
    if (d->log && d->lo <= 0)
        rt_usage_error("search: --%s: a :log range needs numbers above 0", d->name);
    if (d->kind == 'i' && (fabs(d->lo) > MAX_WHOLE_RANGE || fabs(d->hi) > MAX_WHOLE_RANGE))
        rt_usage_error("search: --%s: a range of whole numbers must lie within -2^53..2^53 "
                       "(9007199254740992), got '%s'",
                       d->name, spec);
}

static char *number_text(const struct dim *d, double v);

/* Every value a trial may set, checked before the first trial (a bad one is a usage error
 * naming the option, as on the command line). */
static void check_values(const nnrt_model *m, const rt_options *o, const dim *dims, int n) {
    rt_options scratch = *o;
    for (int i = 0; i < n; i++) {
        const dim *d = &dims[i];
        if (!d->is_range) {
            for (int k = 0; k < d->n_values; k++)
                rt_options_set(m, &scratch, d->name, d->values[k]);
            continue;
        }
        char *ends[2] = {number_text(d, d->lo), number_text(d, d->hi)};
        for (int k = 0; k < 2; k++) {
            rt_options_set(m, &scratch, d->name, ends[k]);
            rt_free(ends[k]);
        }
    }
}

/* Options that act once, when the data is loaded or the program starts, and so cannot
 * differ between trials. */
static const char *const fixed_for_the_search[] = {"validation", "standardize", "stride",
                                                   "threads"};

static void check_can_vary(const char *name) {
    for (size_t i = 0; i < sizeof fixed_for_the_search / sizeof *fixed_for_the_search; i++)
        if (strcmp(name, fixed_for_the_search[i]) == 0) {
            char shown[64];
            snprintf(shown, sizeof shown, "--%s", name);
            rt_usage_error("search: %s acts once for the whole search (as the rows are loaded, "
                           "or the program starts): give it one value",
                           shown);
        }
}

static dim *parse_dims(const rt_options *o) {
    dim *dims = rt_alloc_array((size_t)o->n_search + 1, sizeof *dims);
    for (int i = 0; i < o->n_search; i++) {
        dim *d = &dims[i];
        d->name = o->search_names[i];
        check_can_vary(d->name);
        d->kind = rt_option_number_kind(d->name);
        const char *spec = o->search_specs[i], *eq = strchr(spec, '=');
        d->prefix = rt_strdup("");
        if (strcmp(d->name, "set") == 0) { /* NAME=range or NAME=list: NAME's start values */
            d->prefix = rt_strndup(spec, (size_t)(eq - spec + 1));
            d->kind = 'r';
            spec = eq + 1;
        }
        if (strstr(spec, "..")) {
            if (!d->kind) rt_usage_error("search: --%s takes a list (a,b), not a range", d->name);
            d->is_range = 1;
            parse_range(d, spec);
        } else {
            d->values = split_list(spec, d->prefix, &d->n_values);
        }
    }
    return dims;
}

/* ---- the values of a trial ---- */

static char *number_text(const struct dim *d, double v) {
    char buf[600]; /* a --set param's name (at most 511 bytes, as checkpoint names), "=", v */
    if (d->kind == 'i')
        snprintf(buf, sizeof buf, "%s%lld", d->prefix, (long long)llround(v));
    else
        snprintf(buf, sizeof buf, "%s%.4g", d->prefix, v);
    return rt_strdup(buf);
}

/* A value as the option is given it: a range's number (rounded as it is printed), or a
 * list's value; at is the number, or the list's index. */
static char *value_text(const dim *d, double at) {
    return d->is_range ? number_text(d, at) : rt_strdup(d->values[(int)at]);
}

static void set_value(trial *t, int k, const dim *d, double at) {
    t->values[k] = value_text(d, at);
    t->at[k] = d->is_range ? strtod(t->values[k] + strlen(d->prefix), NULL) : at;
}

/* The k-th of n points of a range (k from 0): evenly spaced, or geometrically with :log. */
static double range_point(const dim *d, int k, int n) {
    if (n == 1) return d->log ? sqrt(d->lo * d->hi) : (d->lo + d->hi) / 2;
    double f = (double)k / (n - 1);
    return d->log ? exp(log(d->lo) + f * (log(d->hi) - log(d->lo))) : d->lo + f * (d->hi - d->lo);
}

static double random_at(const dim *d, rt_rng *rng) {
    if (!d->is_range) return (double)rt_rng_below(rng, (uint64_t)d->n_values);
    double u = rt_rng_uniform(rng);
    return d->log ? exp(log(d->lo) + u * (log(d->hi) - log(d->lo))) : d->lo + u * (d->hi - d->lo);
}

static int dim_size(const dim *d) {
    return d->is_range ? d->points : d->n_values;
}

/* Grid point `index`, the first option varying slowest. */
static double grid_at(const dim *dims, int n_dims, int which, int64_t index) {
    for (int i = n_dims - 1; i > which; i--) index /= dim_size(&dims[i]);
    int k = (int)(index % dim_size(&dims[which]));
    const dim *d = &dims[which];
    return d->is_range ? range_point(d, k, d->points) : k;
}

/* Where TPE fits its densities: a log range by the log of its values, as it is drawn. */
static double tpe_coordinate(const dim *d, double at) {
    return d->is_range && d->log ? log(at) : at;
}

static int compare_trials(const void *a, const void *b) {
    const trial *x = a, *y = b;
    if (x->ok != y->ok) return y->ok - x->ok;
    if (x->score != y->score) return (x->score > y->score) - (x->score < y->score);
    return (x->number > y->number) - (x->number < y->number);
}

static int compare_trial_pointers(const void *a, const void *b) {
    return compare_trials(*(const trial *const *)a, *(const trial *const *)b);
}

/* Trial i's values by TPE from trials 0..i-1: the good are the best of those that finished
 * (rt_tpe_good_count), the bad all the others, diverged ones too. Until a trial finishes,
 * random draws. */
static void tpe_values(search *s, trial *t, int64_t i) {
    const trial **ranked = rt_alloc_array((size_t)i + 1, sizeof *ranked);
    int64_t finished = 0;
    for (int64_t j = 0; j < i; j++) {
        ranked[j] = &s->trials[j];
        finished += s->trials[j].ok;
    }
    qsort(ranked, (size_t)i, sizeof *ranked, compare_trial_pointers);
    int64_t n_good = rt_tpe_good_count(finished), n_bad = i - n_good;
    double *good = rt_alloc_array((size_t)n_good + 1, sizeof *good);
    double *bad = rt_alloc_array((size_t)n_bad + 1, sizeof *bad);
    for (int k = 0; k < s->n_dims; k++) {
        const dim *d = &s->dims[k];
        if (n_good == 0) {
            set_value(t, k, d, random_at(d, &s->rng));
            continue;
        }
        for (int64_t j = 0; j < i; j++) {
            double x = tpe_coordinate(d, ranked[j]->at[k]);
            if (j < n_good)
                good[j] = x;
            else
                bad[j - n_good] = x;
        }
        rt_tpe_setting setting = {d->is_range ? 0 : d->n_values, tpe_coordinate(d, d->lo),
                                  tpe_coordinate(d, d->hi)};
        double x = rt_tpe_next(&setting, good, n_good, bad, n_bad, &s->rng);
        set_value(t, k, d, d->is_range && d->log ? exp(x) : x);
    }
    rt_free(good);
    rt_free(bad);
    rt_free(ranked);
}

static void draw_values(search *s, trial *t, int64_t i) {
    t->values = rt_alloc_array((size_t)s->n_dims, sizeof *t->values);
    t->at = rt_alloc_array((size_t)s->n_dims, sizeof *t->at);
    t->number = i;
    if (s->strategy == TPE && i >= s->o->startup_trials) {
        tpe_values(s, t, i);
        return;
    }
    for (int k = 0; k < s->n_dims; k++) {
        const dim *d = &s->dims[k];
        set_value(t, k, d,
                  s->strategy == GRID ? grid_at(s->dims, s->n_dims, k, i) : random_at(d, &s->rng));
    }
}

/* ---- folds ---- */

/* What --folds cannot do, each refused before anything is loaded (a model without inputs
 * never gets here: its search has no --folds option). */
static void check_folds(const nnrt_model *m, const rt_options *o) {
    long long k = (long long)o->folds;
    if (k == 1) rt_usage_error("--folds 1: cross-validation needs at least 2 folds (0: off)");
    if (o->validation_data)
        rt_usage_error("--folds %lld holds out each fold in turn: give --folds K or "
                       "--validation-data FILE, not both",
                       k);
    if (o->validation != m->train.validation)
        rt_usage_error("--folds %lld holds out each fold in turn: --validation F does not apply",
                       k);
    if (rt_is_text_model(m))
        rt_usage_error("--folds %lld: a text is split at its end (--validation F), not into "
                       "folds: windows of one fold would overlap another's",
                       k);
    if (o->early_stopping && o->save)
        rt_usage_error("--folds %lld with --early-stopping: the best settings are trained again "
                       "on all the rows for --save, with no validation rows to stop on; give "
                       "--no-save or --early-stopping off",
                       k);
}

/* Fold of each row: a seeded permutation of the rows (the split stream, as --validation's)
 * cut into k runs of sizes that differ by at most 1. */
static void plan_folds(const nnrt_model *m, const rt_options *o, rt_train_data *data,
                       fold_plan *p) {
    int64_t n = data->train.rows, k = o->folds;
    if (k > n)
        rt_usage_error("--folds %lld: only %lld row%s to split", (long long)k, (long long)n,
                       n == 1 ? "" : "s");
    int64_t *perm = rt_alloc_array((size_t)n, sizeof *perm);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    rt_rng rng;
    rt_rng_seed(&rng, o->seed, RT_STREAM_SPLIT);
    rt_rng_shuffle(&rng, perm, n);
    p->k = k;
    p->fold_of = rt_alloc_array((size_t)n, sizeof *p->fold_of);
    for (int64_t i = 0; i < n; i++) p->fold_of[perm[i]] = i * k / n;
    rt_free(perm);
    p->train_rows = rt_alloc_array((size_t)n + 1, sizeof *p->train_rows);
    p->held_rows = rt_alloc_array((size_t)n + 1, sizeof *p->held_rows);
    if (!o->standardize) return;
    rt_widen_inputs(&data->train, m->f64);
    p->input_bytes = (size_t)(n * data->train.input_elems) * rt_elem_size(m->f64);
    p->raw_inputs = rt_alloc(p->input_bytes + 1);
    memcpy(p->raw_inputs, data->train.inputs, p->input_bytes);
}

/* The rows of fold j's run, in file order: trained on the other folds, scored on fold j
 * (j = -1: trained on all the rows, none held out). With --standardize, the inputs as
 * loaded, standardised by the statistics of the rows it trains on. */
static void use_fold(search *s, int64_t j, rt_train_data *out) {
    fold_plan *p = &s->folds;
    int64_t n = s->data.train.rows, n_train = 0, n_held = 0;
    for (int64_t r = 0; r < n; r++) {
        if (p->fold_of[r] == j)
            p->held_rows[n_held++] = r;
        else
            p->train_rows[n_train++] = r;
    }
    if (p->raw_inputs) {
        memcpy(s->data.train.inputs, p->raw_inputs, p->input_bytes);
        rt_free(p->stats.mean);
        rt_free(p->stats.std);
        rt_compute_stats(&s->data.train, p->train_rows, n_train, s->m->f64, &p->stats);
        rt_apply_stats(&s->data.train, &p->stats, s->m->f64);
    }
    *out = s->data;
    out->train_rows = p->train_rows;
    out->n_train = n_train;
    out->validation_rows = p->held_rows;
    out->n_validation = n_held;
    out->validation = &out->train;
    if (p->raw_inputs) out->stats = p->stats;
}

/* ---- a trial ---- */

static void option_text(const char *name, char *buf, size_t size) {
    snprintf(buf, size, "--%s", name);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
}

static void report_settings(const search *s, const trial *t) {
    fprintf(stderr, "trial %lld/%lld ", (long long)t->number + 1, (long long)s->n);
    for (int k = 0; k < s->n_dims; k++) {
        char name[64];
        option_text(s->dims[k].name, name, sizeof name);
        fprintf(stderr, " %s %s", name, t->values[k]);
    }
}

static void report_fold(const search *s, const trial *t, int64_t j, int ok, rt_metrics v) {
    report_settings(s, t);
    fprintf(stderr, "  fold %lld/%lld", (long long)j + 1, (long long)s->folds.k);
    if (!ok) {
        fprintf(stderr, "  diverged\n");
        return;
    }
    fprintf(stderr, "  val loss %.6g", rt_mean_loss(v));
    if (s->classify) fprintf(stderr, "  val accuracy %.4f", rt_accuracy(v));
    fputc('\n', stderr);
}

/* A trial's results, after its settings. */
static void report_results(const search *s, const trial *t) {
    if (!t->ok) {
        fprintf(stderr, "  diverged\n");
        return;
    }
    int folds = s->folds.k > 0;
    if (!s->has_inputs) { /* as train prints it */
        fprintf(stderr, "  final loss %.9g\n", t->loss);
        return;
    }
    fprintf(stderr, "  val loss %.6g", t->loss);
    if (folds) fprintf(stderr, " ± %.6g", t->loss_std);
    if (s->classify) fprintf(stderr, "  val accuracy %.4f", t->accuracy);
    if (s->classify && folds) fprintf(stderr, " ± %.4f", t->accuracy_std);
    fputc('\n', stderr);
}

static void report_trial(const search *s, const trial *t) {
    report_settings(s, t);
    report_results(s, t);
}

static double population_std(const double *v, int64_t n, double mean) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (v[i] - mean) * (v[i] - mean);
    return sqrt(sum / (double)n);
}

/* Trains once per fold (the first diverged fold ends the trial) and sets the mean and the
 * spread of the folds' metrics. */
static void run_folds(search *s, trial *t, const rt_options *o) {
    const fold_plan *p = &s->folds;
    double *loss = rt_alloc_array((size_t)p->k, sizeof *loss);
    double *accuracy = rt_alloc_array((size_t)p->k, sizeof *accuracy);
    t->ok = 1;
    for (int64_t j = 0; j < p->k && t->ok; j++) {
        rt_train_data fold;
        use_fold(s, j, &fold);
        rt_metrics v;
        t->ok = rt_train_trial(s->m, o, &fold, s->fixed, &v);
        if (!s->o->quiet) report_fold(s, t, j, t->ok, v);
        loss[j] = rt_mean_loss(v);
        accuracy[j] = rt_accuracy(v);
        t->loss += loss[j] / (double)p->k;
        t->accuracy += accuracy[j] / (double)p->k;
    }
    if (t->ok) {
        t->loss_std = population_std(loss, p->k, t->loss);
        t->accuracy_std = population_std(accuracy, p->k, t->accuracy);
    }
    rt_free(loss);
    rt_free(accuracy);
}

static void run_trial(search *s, trial *t) {
    rt_options o = *s->o;
    for (int k = 0; k < s->n_dims; k++) rt_options_set(s->m, &o, s->dims[k].name, t->values[k]);
    if (s->folds.k > 0) {
        run_folds(s, t, &o);
    } else {
        rt_metrics v;
        t->ok = rt_train_trial(s->m, &o, &s->data, s->fixed, &v);
        t->loss = rt_mean_loss(v);
        t->accuracy = rt_accuracy(v);
    }
    t->score = s->by_accuracy ? -t->accuracy : t->loss;
    if (!s->o->quiet) report_trial(s, t);
}

/* ---- trials that repeat one ----
 * A trial whose settings are an earlier trial's trains the same weights (a run is the same
 * bits for the same seed and settings; HOGWILD!'s is not): it takes that trial's results
 * and is not trained again. Random and TPE draws from lists repeat often: `--lr 0.1,0.2`
 * with the default 20 trials trained each value ten times. When every setting of a search
 * of lists alone has been tried, the trials left would only repeat them: the search ends. */

/* The earlier trial with t's settings, or -1. */
static int64_t same_as_earlier(const search *s, const trial *t) {
    if (s->o->hogwild > 0) return -1;
    for (int64_t j = 0; j < t->number; j++) {
        int same = 1;
        for (int k = 0; k < s->n_dims && same; k++)
            same = strcmp(s->trials[j].values[k], t->values[k]) == 0;
        if (same) return j;
    }
    return -1;
}

static void repeat_trial(const search *s, trial *t, int64_t j) {
    const trial *was = &s->trials[j];
    t->ok = was->ok;
    t->loss = was->loss, t->accuracy = was->accuracy;
    t->loss_std = was->loss_std, t->accuracy_std = was->accuracy_std;
    t->score = was->score;
    t->repeat = 1;
    if (s->o->quiet) return;
    report_settings(s, t);
    fprintf(stderr, "  as trial %lld", (long long)j + 1);
    report_results(s, t);
}

/* The settings a search of lists alone can try (a list's values, words, on|off); 0 when
 * an option is a range, or there are more than the trials. */
static int64_t finite_settings(const search *s) {
    int64_t points = 1;
    for (int k = 0; k < s->n_dims; k++) {
        if (s->dims[k].is_range) return 0;
        points *= s->dims[k].n_values;
        if (points > s->n) return 0;
    }
    return points;
}

/* The trials without those that repeat one, in their order: the table and the plot show
 * each setting once. */
static void drop_repeats(search *s) {
    int64_t kept = 0;
    for (int64_t i = 0; i < s->n; i++)
        if (!s->trials[i].repeat) s->trials[kept++] = s->trials[i];
    s->n = kept;
}

/* ---- the table ---- */

static int column_width(const dim *d, const trial *trials, int64_t n, int which) {
    char head[64];
    option_text(d->name, head, sizeof head);
    int w = (int)strlen(head) - 2;
    for (int64_t t = 0; t < n; t++) {
        int len = (int)strlen(trials[t].values[which]);
        if (len > w) w = len;
    }
    return w;
}

/* The metric columns: the loss (final_loss without inputs), the accuracy when the model has
 * one, each followed by its spread over the folds with --folds. Cells are padded to 12
 * characters but the last. */
enum { MAX_METRIC_CELLS = 4, CELL_SIZE = 32 };

static void print_cells(char cells[][CELL_SIZE], int n) {
    for (int i = 0; i < n; i++) printf(i + 1 < n ? "  %-12s" : "  %s", cells[i]);
    putchar('\n');
}

static void print_metric_heads(const search *s) {
    char cells[MAX_METRIC_CELLS][CELL_SIZE];
    int n = 0, folds = s->folds.k > 0;
    snprintf(cells[n++], CELL_SIZE, "%s", s->has_inputs ? "val_loss" : "final_loss");
    if (folds) snprintf(cells[n++], CELL_SIZE, "val_loss_std");
    if (s->classify) snprintf(cells[n++], CELL_SIZE, "val_accuracy");
    if (s->classify && folds) snprintf(cells[n++], CELL_SIZE, "val_accuracy_std");
    print_cells(cells, n);
}

static void print_metrics(const search *s, const trial *t) {
    char cells[MAX_METRIC_CELLS][CELL_SIZE];
    int n = 0, folds = s->folds.k > 0;
    if (!t->ok) { /* "diverged", then a dash in each other column */
        int columns = 1 + folds + s->classify + (s->classify && folds);
        snprintf(cells[n++], CELL_SIZE, "diverged");
        while (n < columns) snprintf(cells[n++], CELL_SIZE, "-");
        print_cells(cells, n);
        return;
    }
    snprintf(cells[n++], CELL_SIZE, s->has_inputs ? "%.6g" : "%.9g", t->loss);
    if (folds) snprintf(cells[n++], CELL_SIZE, "%.6g", t->loss_std);
    if (s->classify) snprintf(cells[n++], CELL_SIZE, "%.4f", t->accuracy);
    if (s->classify && folds) snprintf(cells[n++], CELL_SIZE, "%.4f", t->accuracy_std);
    print_cells(cells, n);
}

static void print_table(search *s) {
    qsort(s->trials, (size_t)s->n, sizeof *s->trials, compare_trials);
    int *widths = rt_alloc_array((size_t)s->n_dims + 1, sizeof *widths);
    printf("rank");
    for (int i = 0; i < s->n_dims; i++) {
        widths[i] = column_width(&s->dims[i], s->trials, s->n, i);
        char head[64];
        option_text(s->dims[i].name, head, sizeof head);
        printf("  %-*s", widths[i], head + 2);
    }
    print_metric_heads(s);
    for (int64_t t = 0; t < s->n; t++) {
        printf("%4lld", (long long)t + 1);
        for (int i = 0; i < s->n_dims; i++) printf("  %-*s", widths[i], s->trials[t].values[i]);
        print_metrics(s, &s->trials[t]);
    }
    rt_free(widths);
}

/* ---- the plot ---- */

static void write_plot(const search *s, const char *path) {
    rt_plot_setting *settings = rt_alloc_array((size_t)s->n_dims, sizeof *settings);
    double *y = rt_alloc_array((size_t)s->n + 1, sizeof *y);
    for (int64_t t = 0; t < s->n; t++) {
        const trial *tr = &s->trials[t];
        y[t] = !tr->ok ? NAN : s->by_accuracy ? tr->accuracy : tr->loss;
    }
    for (int k = 0; k < s->n_dims; k++) {
        const dim *d = &s->dims[k];
        double *x = rt_alloc_array((size_t)s->n + 1, sizeof *x);
        for (int64_t t = 0; t < s->n; t++) x[t] = s->trials[t].at[k];
        settings[k] = (rt_plot_setting){d->name,
                                        d->lo,
                                        d->hi,
                                        d->log,
                                        d->is_range ? 0 : d->n_values,
                                        (const char *const *)d->values,
                                        x};
    }
    char metric[64];
    const char *what = s->by_accuracy ? "accuracy" : "loss";
    if (!s->has_inputs)
        snprintf(metric, sizeof metric, "final loss");
    else if (s->folds.k > 0)
        snprintf(metric, sizeof metric, "val %s, mean of %lld folds", what, (long long)s->folds.k);
    else
        snprintf(metric, sizeof metric, "val %s", what);
    char title[160];
    snprintf(title, sizeof title, "search: %s", s->m->name);
    rt_plot_trials(path, title, metric, settings, s->n_dims, y, s->n, 0);
    for (int k = 0; k < s->n_dims; k++) rt_free((void *)settings[k].x);
    rt_free(settings);
    rt_free(y);
}

/* ---- the command ---- */

/* The points a grid leaves out under --trials are named before the first trial, so that
 * a run that covers part of the grid says so. */
static void warn_left_out(const dim *dims, int n_dims, int64_t points, int64_t trials) {
    fprintf(stderr,
            "%s: warning: search: the grid has %lld points and --trials is %lld: the last %lld "
            "are left out, from",
            rt_program_name(), (long long)points, (long long)trials, (long long)(points - trials));
    for (int k = 0; k < n_dims; k++) {
        char name[64], *value = value_text(&dims[k], grid_at(dims, n_dims, k, trials));
        option_text(dims[k].name, name, sizeof name);
        fprintf(stderr, " %s %s", name, value);
        rt_free(value);
    }
    fprintf(stderr, " on (give --trials %lld to run them all)\n", (long long)points);
}

static int64_t trial_count(const rt_options *o, const dim *dims, int n_dims, int grid) {
    if (!grid) return o->trials;
    int64_t points = 1;
    for (int i = 0; i < n_dims; i++) {
        points *= dim_size(&dims[i]);
        if (points > RT_MAX_TRIALS)
            rt_usage_error("search: the grid has more than %d points", RT_MAX_TRIALS);
    }
    if (points <= o->trials) return points;
    warn_left_out(dims, n_dims, points, o->trials);
    return o->trials;
}

static enum strategy strategy_of(const char *name) {
    return strcmp(name, "grid") == 0 ? GRID : strcmp(name, "tpe") == 0 ? TPE : RANDOM;
}

/* The rows of the search: with --folds, all of them in one set (standardised per fold
 * later); else the training and validation rows as train reads them, 20% held out unless
 * --validation or --validation-data says. */
static void load_rows(search *s, rt_options *base) {
    if (base->folds > 0) {
        rt_options all = *base;
        all.standardize = 0;
        rt_load_train_data(s->m, &all, &s->data);
        plan_folds(s->m, base, &s->data, &s->folds);
        return;
    }
    if (s->has_inputs && base->validation == 0 && !base->validation_data) base->validation = 0.2;
    rt_load_train_data(s->m, base, &s->data);
}

/* With --folds no trial's weights were trained on all the rows: the best settings train
 * once more on all of them (standardised by all of them), and those weights are saved. */
static void train_best_on_all_rows(search *s, const trial *best) {
    rt_options o = *s->o;
    for (int k = 0; k < s->n_dims; k++) rt_options_set(s->m, &o, s->dims[k].name, best->values[k]);
    rt_train_data all;
    use_fold(s, -1, &all);
    rt_metrics none;
    if (!s->o->quiet)
        fprintf(stderr, "training the best settings on all %lld rows\n", (long long)all.n_train);
    if (!rt_train_trial(s->m, &o, &all, s->fixed, &none))
        rt_fatal("search: the best settings diverged when trained on all the rows; nothing "
                 "saved");
    s->data.stats = all.stats;
}

static void print_best(const search *s) {
    printf("best:");
    for (int k = 0; k < s->n_dims; k++) {
        char name[64];
        option_text(s->dims[k].name, name, sizeof name);
        printf(" %s %s", name, s->trials[0].values[k]);
    }
    putchar('\n');
}

int rt_cmd_search(const nnrt_model *m, const rt_options *o) {
    rt_check_run_files(m, o, 1);
    if (o->save) rt_check_writable(o->save);
    if (o->plot) rt_check_writable(o->plot);
    if (o->n_search == 0)
        rt_usage_error("search needs a range or a list to search, such as --lr 1e-4..1e-1:log "
                       "or --batch 16,32,64");
    if (o->folds > 0) check_folds(m, o);
    search s = {.m = m, .strategy = strategy_of(o->strategy), .n_dims = o->n_search};
    s.has_inputs = m->n_inputs > 0;
    s.classify = s.has_inputs && m->train.classification;
    s.by_accuracy = strcmp(o->monitor, "accuracy") == 0;
    rt_options base = *o;
    s.o = &base;
    s.dims = parse_dims(o);
    check_values(m, &base, s.dims, s.n_dims);
    s.n = trial_count(o, s.dims, s.n_dims, s.strategy == GRID);
    rt_warn_threads_beyond_cpus(o); /* of the trials' --workers, unless it is searched */
    load_rows(&s, &base);
    s.trials = rt_alloc_array((size_t)s.n, sizeof *s.trials);
    s.fixed = rt_new_fixed_arena(m);
    void *best = rt_new_fixed_arena(m);
    size_t arena_bytes = (size_t)m->fixed_elems * rt_elem_size(m->f64);
    rt_rng_seed(&s.rng, o->seed, RT_STREAM_SEARCH);
    int have_best = 0;
    int64_t settings = s.strategy == GRID ? 0 : finite_settings(&s), tried = 0;
    for (int64_t i = 0; i < s.n; i++) {
        trial *t = &s.trials[i];
        draw_values(&s, t, i);
        int64_t same = same_as_earlier(&s, t);
        if (same >= 0) {
            repeat_trial(&s, t, same);
            continue; /* the same score: never better than the trial it repeats */
        }
        run_trial(&s, t);
        if (++tried == settings && i + 1 < s.n) {
            if (!o->quiet)
                fprintf(stderr,
                        "search: all %lld settings tried in %lld trials; the other %lld "
                        "would repeat them\n",
                        (long long)settings, (long long)i + 1, (long long)(s.n - i - 1));
            s.n = i + 1;
        }
        /* the best so far: the first trial that no earlier one matches or beats */
        int better = t->ok;
        for (int64_t j = 0; better && j < i; j++)
            if (s.trials[j].ok && s.trials[j].score <= t->score) better = 0;
        if (better) {
            memcpy(best, s.fixed, arena_bytes);
            have_best = 1;
        }
    }
    drop_repeats(&s);
    print_table(&s);
    if (o->plot) write_plot(&s, o->plot);
    if (!have_best) rt_fatal("search: every trial diverged; try smaller learning rates");
    print_best(&s);
    if (o->save) {
        if (s.folds.k > 0) {
            train_best_on_all_rows(&s, &s.trials[0]);
            memcpy(best, s.fixed, arena_bytes);
        }
        rt_save_weights(m, best, &s.data.stats, o->save);
        if (!o->quiet) fprintf(stderr, "saved the best weights to %s\n", o->save);
    }
    return 0;
}
