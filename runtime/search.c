/* search.c: hyperparameter search (see search.h). The data is loaded (and standardised)
 * once; each trial copies the options, sets its drawn values as the command line would
 * (so each is checked the same way), trains quietly from the same initial weights and is
 * scored on the validation rows. A trial whose loss goes non-finite ranks last instead of
 * ending the search. */
#include "search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "files.h"
#include "model.h"
#include "rng.h"
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
    rt_metrics validation;
    int ok;
    double score; /* lower is better: the loss, or minus the accuracy */
} trial;

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

/* LO..HI, then optional :log and :K in either order. */
static void parse_range(dim *d, const char *spec) {
    const char *dots = strstr(spec, ".."), *colon = strchr(dots, ':');
    size_t hi_len = colon ? (size_t)(colon - dots - 2) : strlen(dots + 2);
    d->lo = range_number(d->name, spec, (size_t)(dots - spec), spec);
    d->hi = range_number(d->name, dots + 2, hi_len, spec);
    d->points = GRID_POINTS;
    while (colon) {
        const char *next = strchr(colon + 1, ':');
        size_t len = next ? (size_t)(next - colon - 1) : strlen(colon + 1);
        if (len == 3 && strncmp(colon + 1, "log", 3) == 0)
            d->log = 1;
        else
            d->points = (int)range_number(d->name, colon + 1, len, spec);
        colon = next;
    }
    if (!(d->lo <= d->hi)) rt_usage_error("search: --%s: %g..%g is empty", d->name, d->lo, d->hi);
    if (d->log && d->lo <= 0)
        rt_usage_error("search: --%s: a :log range needs numbers above 0", d->name);
    if (d->points < 1) rt_usage_error("search: --%s: a grid needs at least 1 point", d->name);
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

static dim *parse_dims(const rt_options *o) {
    dim *dims = rt_alloc_array((size_t)o->n_search + 1, sizeof *dims);
    for (int i = 0; i < o->n_search; i++) {
        dim *d = &dims[i];
        d->name = o->search_names[i];
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

static char *number_text(const struct dim *d, double v) {
    char buf[600]; /* a --set param's name (at most 511 bytes, as checkpoint names), "=", v */
    if (d->kind == 'i')
        snprintf(buf, sizeof buf, "%s%lld", d->prefix, (long long)llround(v));
    else
        snprintf(buf, sizeof buf, "%s%.4g", d->prefix, v);
    return rt_strdup(buf);
}

/* The k-th of n points of a range (k from 0): evenly spaced, or geometrically with :log. */
static double range_point(const dim *d, int k, int n) {
    if (n == 1) return d->log ? sqrt(d->lo * d->hi) : (d->lo + d->hi) / 2;
    double f = (double)k / (n - 1);
    return d->log ? exp(log(d->lo) + f * (log(d->hi) - log(d->lo))) : d->lo + f * (d->hi - d->lo);
}

static char *random_value(const dim *d, rt_rng *rng) {
    if (!d->is_range) return rt_strdup(d->values[rt_rng_below(rng, (uint64_t)d->n_values)]);
    double u = rt_rng_uniform(rng);
    double v =
        d->log ? exp(log(d->lo) + u * (log(d->hi) - log(d->lo))) : d->lo + u * (d->hi - d->lo);
    return number_text(d, v);
}

static int dim_size(const dim *d) {
    return d->is_range ? d->points : d->n_values;
}

/* Grid point `index`, the first option varying slowest. */
static char *grid_value(const dim *dims, int n_dims, int which, int64_t index) {
    for (int i = n_dims - 1; i > which; i--) index /= dim_size(&dims[i]);
    int k = (int)(index % dim_size(&dims[which]));
    const dim *d = &dims[which];
    return d->is_range ? number_text(d, range_point(d, k, d->points)) : rt_strdup(d->values[k]);
}

/* ---- the table ---- */

static void option_text(const char *name, char *buf, size_t size) {
    snprintf(buf, size, "--%s", name);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
}

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

static int compare_trials(const void *a, const void *b) {
    const trial *x = a, *y = b;
    if (x->ok != y->ok) return y->ok - x->ok;
    return (x->score > y->score) - (x->score < y->score);
}

static void print_table(const nnrt_model *m, const dim *dims, int n_dims, trial *trials,
                        int64_t n) {
    qsort(trials, (size_t)n, sizeof *trials, compare_trials);
    int classify = m->train.classification;
    int *widths = rt_alloc_array((size_t)n_dims + 1, sizeof *widths);
    printf("rank");
    for (int i = 0; i < n_dims; i++) {
        widths[i] = column_width(&dims[i], trials, n, i);
        char head[64];
        option_text(dims[i].name, head, sizeof head);
        printf("  %-*s", widths[i], head + 2);
    }
    printf("  %-12s%s\n", "val_loss", classify ? "  val_accuracy" : "");
    for (int64_t t = 0; t < n; t++) {
        printf("%4lld", (long long)t + 1);
        for (int i = 0; i < n_dims; i++) printf("  %-*s", widths[i], trials[t].values[i]);
        if (!trials[t].ok) {
            printf("  %-12s%s\n", "diverged", classify ? "  -" : "");
            continue;
        }
        printf("  %-12.6g", rt_mean_loss(trials[t].validation));
        if (classify) printf("  %.4f", rt_accuracy(trials[t].validation));
        putchar('\n');
    }
    rt_free(widths);
}

/* ---- the command ---- */

static void report_trial(const dim *dims, int n_dims, const trial *t, int64_t i, int64_t n,
                         int classify) {
    fprintf(stderr, "trial %lld/%lld ", (long long)i + 1, (long long)n);
    for (int k = 0; k < n_dims; k++) {
        char name[64];
        option_text(dims[k].name, name, sizeof name);
        fprintf(stderr, " %s %s", name, t->values[k]);
    }
    if (!t->ok) {
        fprintf(stderr, "  diverged\n");
        return;
    }
    fprintf(stderr, "  val loss %.6g", rt_mean_loss(t->validation));
    if (classify) fprintf(stderr, "  val accuracy %.4f", rt_accuracy(t->validation));
    fputc('\n', stderr);
}

/* The points a grid leaves out under --trials are named before the first trial, so that
 * a run that covers part of the grid says so. */
static void warn_left_out(const dim *dims, int n_dims, int64_t points, int64_t trials) {
    fprintf(stderr,
            "%s: warning: search: the grid has %lld points and --trials is %lld: the last %lld "
            "are left out, from",
            rt_program_name(), (long long)points, (long long)trials, (long long)(points - trials));
    for (int k = 0; k < n_dims; k++) {
        char name[64], *value = grid_value(dims, n_dims, k, trials);
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
        if (points > 1000000) rt_usage_error("search: the grid has more than 1000000 points");
    }
    if (points <= o->trials) return points;
    warn_left_out(dims, n_dims, points, o->trials);
    return o->trials;
}

int rt_cmd_search(const nnrt_model *m, const rt_options *o) {
    rt_check_run_files(m, o, 1);
    if (o->save) rt_check_writable(o->save);
    if (o->n_search == 0)
        rt_usage_error("search needs a range or a list to search, such as --lr 1e-4..1e-1:log "
                       "or --batch 16,32,64");
    rt_options base = *o;
    if (base.validation == 0 && !base.validation_data) base.validation = 0.2;
    int grid = strcmp(o->strategy, "grid") == 0, n_dims = o->n_search;
    dim *dims = parse_dims(o);
    check_values(m, &base, dims, n_dims);
    rt_train_data data;
    rt_load_train_data(m, &base, &data);
    int64_t n = trial_count(o, dims, n_dims, grid);
    trial *trials = rt_alloc_array((size_t)n, sizeof *trials);
    void *fixed = rt_new_fixed_arena(m), *best = rt_new_fixed_arena(m);
    size_t arena_bytes = (size_t)m->fixed_elems * rt_elem_size(m->f64);
    rt_rng rng;
    rt_rng_seed(&rng, o->seed, RT_STREAM_SEARCH);
    int by_accuracy = strcmp(o->monitor, "accuracy") == 0, have_best = 0;
    for (int64_t i = 0; i < n; i++) {
        trial *t = &trials[i];
        rt_options trial_options = base;
        t->values = rt_alloc_array((size_t)n_dims, sizeof *t->values);
        for (int k = 0; k < n_dims; k++) {
            t->values[k] = grid ? grid_value(dims, n_dims, k, i) : random_value(&dims[k], &rng);
            rt_options_set(m, &trial_options, dims[k].name, t->values[k]);
        }
        t->ok = rt_train_trial(m, &trial_options, &data, fixed, &t->validation);
        t->score = by_accuracy ? -rt_accuracy(t->validation) : rt_mean_loss(t->validation);
        if (!o->quiet) report_trial(dims, n_dims, t, i, n, m->train.classification);
        /* the best so far: the first trial that no earlier one matches or beats */
        int better = t->ok;
        for (int64_t j = 0; better && j < i; j++)
            if (trials[j].ok && trials[j].score <= t->score) better = 0;
        if (better) {
            memcpy(best, fixed, arena_bytes);
            have_best = 1;
        }
    }
    print_table(m, dims, n_dims, trials, n);
    if (!have_best) rt_fatal("search: every trial diverged; try smaller learning rates");
    printf("best:");
    for (int k = 0; k < n_dims; k++) {
        char name[64];
        option_text(dims[k].name, name, sizeof name);
        printf(" %s %s", name, trials[0].values[k]);
    }
    putchar('\n');
    if (o->save) {
        rt_save_weights(m, best, &data.stats, o->save);
        if (!o->quiet) fprintf(stderr, "saved the best weights to %s\n", o->save);
    }
    return 0;
}
