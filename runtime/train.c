/* train.c: the training loop. Rows are split once into training and validation rows,
 * reshuffled every epoch, gathered into batches and handed to the optimizer; progress goes
 * to stderr (throttled), a row per epoch to the --log file, a row per step to the --trace
 * CSV, and the final lines to stdout (stderr when the trace is on stdout). Nothing in the
 * loop allocates: every buffer exists before the first step. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "files.h"
#include "init.h"
#include "model.h"
#include "rng.h"
#include "trace.h"
#include "util.h"

/* ---- optimizers ----
 * An optimizer turns the batch in ctx into one update of the params. "sgd" is the model's
 * own sgd_step; optimizers built on grad() get an entry here. */

typedef struct rt_optimizer {
    const char *name;
    void (*step)(const nnrt_model *m, nnrt_ctx *ctx, const rt_options *o);
} rt_optimizer;

static void sgd_update(const nnrt_model *m, nnrt_ctx *ctx, const rt_options *o) {
    m->sgd_step(ctx, o->lr, o->momentum);
}

static const rt_optimizer optimizers[] = {
    {"sgd", sgd_update},
};

static const rt_optimizer *find_optimizer(const char *name) {
    const char *wanted = name ? name : "sgd";
    for (size_t i = 0; i < sizeof optimizers / sizeof optimizers[0]; i++)
        if (strcmp(optimizers[i].name, wanted) == 0) return &optimizers[i];
    rt_fatal("optimizer '%s' is not supported by this runtime (it has: sgd)", wanted);
}

/* ---- progress: stderr lines and the --log file ---- */

#define PROGRESS_INTERVAL 0.1 /* seconds: at most ~10 lines a second */

typedef struct progress {
    const char *unit; /* "epoch" or "step" */
    int quiet, classify;
    FILE *log;
    const char *log_path;
    double start, last_shown;
} progress;

static progress progress_begin(const nnrt_model *m, const rt_options *o) {
    progress p = {0};
    p.unit = m->n_inputs > 0 ? "epoch" : "step";
    p.quiet = o->quiet;
    p.classify = m->n_inputs > 0 && m->train.classification;
    if (o->log) {
        p.log_path = o->log;
        p.log = fopen(o->log, "w");
        if (!p.log) rt_path_error(o->log, "cannot write: %s", strerror(errno));
        fprintf(p.log, "%s,loss,%sseconds\n", p.unit, p.classify ? "accuracy," : "");
    }
    p.start = p.last_shown = rt_now();
    return p;
}

/* One epoch (or step) done. The log gets every row; the terminal gets the first, the last,
 * and otherwise at most one line per PROGRESS_INTERVAL. */
static void progress_report(progress *p, int64_t i, int64_t total, rt_metrics r) {
    double now = rt_now(), seconds = now - p->start;
    int show = i == 1 || i == total || now - p->last_shown >= PROGRESS_INTERVAL;
    if (p->log) {
        fprintf(p->log, "%lld,%.9g,", (long long)i, rt_mean_loss(r));
        if (p->classify) fprintf(p->log, "%.6f,", rt_accuracy(r));
        fprintf(p->log, "%.3f\n", seconds);
        if (show) fflush(p->log);
    }
    if (!show) return;
    p->last_shown = now;
    if (p->quiet) return;
    fprintf(stderr, "%s %lld/%lld  loss %.6g", p->unit, (long long)i, (long long)total,
            rt_mean_loss(r));
    if (p->classify) fprintf(stderr, "  accuracy %.4f", rt_accuracy(r));
    fprintf(stderr, "  %.2fs\n", seconds);
}

static void progress_end(progress *p) {
    if (!p->log) return;
    if (fclose(p->log) != 0) rt_path_error(p->log_path, "cannot write: %s", strerror(errno));
    p->log = NULL;
}

/* ---- rows ---- */

static void shuffle_rows(int64_t *rows, int64_t n, rt_rng *rng) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rt_rng_below(rng, (uint64_t)i + 1);
        int64_t t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
    }
}

typedef struct row_split {
    int64_t *train, *validation; /* row indexes, each in file order */
    int64_t n_train, n_validation;
} row_split;

/* The validation rows are the last round(fraction * n) of a seeded permutation; both sets
 * keep file order, so with --shuffle off training visits rows as the file lists them. */
static row_split split_rows(int64_t n, double fraction, int64_t seed) {
    row_split s = {0};
    s.n_validation = (int64_t)llround(fraction * (double)n);
    s.n_train = n - s.n_validation;
    if (s.n_train < 1)
        rt_usage_error("--validation %g holds out all %lld rows", fraction, (long long)n);
    unsigned char *held_out = rt_alloc((size_t)n);
    if (s.n_validation > 0) {
        int64_t *perm = rt_alloc_array((size_t)n, sizeof *perm);
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        rt_rng rng;
        rt_rng_seed(&rng, seed, RT_STREAM_SPLIT);
        shuffle_rows(perm, n, &rng);
        for (int64_t i = s.n_train; i < n; i++) held_out[perm[i]] = 1;
        rt_free(perm);
    }
    s.train = rt_alloc_array((size_t)s.n_train, sizeof *s.train);
    s.validation = rt_alloc_array((size_t)(s.n_validation ? s.n_validation : 1), sizeof(int64_t));
    int64_t t = 0, v = 0;
    for (int64_t i = 0; i < n; i++) {
        if (held_out[i])
            s.validation[v++] = i;
        else
            s.train[t++] = i;
    }
    rt_free(held_out);
    return s;
}

/* ---- weights ---- */

void rt_start_weights(const nnrt_model *m, void *fixed, const char *init_weights, int64_t seed) {
    if (init_weights) {
        rt_load_weights(m, fixed, init_weights);
        return;
    }
    rt_rng rng;
    rt_rng_seed(&rng, seed, RT_STREAM_INIT);
    rt_init_params(m, fixed, &rng);
}

/* "NAME = 0.5" for a scalar, "NAME = [v0, v1, ...]" (the first 8 values) otherwise. */
static void print_params(FILE *out, const nnrt_model *m, const void *fixed) {
    enum { SHOWN = 8 };
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->rank == 0) {
            fprintf(out, "%s = %.9g\n", t->name, rt_get(fixed, t->offset, m->f64));
            continue;
        }
        fprintf(out, "%s = [", t->name);
        for (int64_t e = 0; e < t->numel && e < SHOWN; e++)
            fprintf(out, "%s%.9g", e ? ", " : "", rt_get(fixed, t->offset + e, m->f64));
        fprintf(out, "%s]\n", t->numel > SHOWN ? ", ..." : "");
    }
}

/* Where the final lines go: stdout, unless the trace has it (stdout stays one clean CSV). */
static FILE *summary_stream(const rt_trace *trace) {
    return rt_trace_on_stdout(trace) ? stderr : stdout;
}

static void finish(const nnrt_model *m, const void *fixed, const rt_options *o) {
    if (!o->save) return;
    rt_save_weights(m, fixed, o->save);
    if (!o->quiet) fprintf(stderr, "saved weights to %s\n", o->save);
}

/* ---- the two kinds of training ---- */

/* The loss at the current weights, by a forward pass: the trace's rows need the loss after
 * an update, while an update step leaves the loss from before it. */
static double function_loss(const nnrt_model *m, nnrt_ctx *ctx) {
    m->forward(ctx);
    return rt_batch_cost(m, ctx);
}

/* A model without inputs is a function to minimise: `steps` updates with batch 1. */
static int train_function(const nnrt_model *m, const rt_options *o, void *fixed, rt_trace *trace) {
    int64_t steps = o->steps > 0 ? o->steps : o->epochs;
    if (steps < 1) rt_usage_error("no step count: give --steps N");
    const rt_optimizer *opt = find_optimizer(m->train.optimizer);
    nnrt_ctx ctx = rt_new_ctx(m, fixed, 1);
    const void *loss = rt_tensor_data(m, &ctx, &m->loss);
    progress p = progress_begin(m, o);
    if (trace) rt_trace_row(trace, 0, fixed, function_loss(m, &ctx));
    for (int64_t s = 1; s <= steps; s++) {
        opt->step(m, &ctx, o);
        rt_metrics r = {rt_get(loss, 0, m->f64), 0, 1}; /* read before the trace's forward */
        if (trace) rt_trace_row(trace, s, fixed, function_loss(m, &ctx));
        progress_report(&p, s, steps, r);
    }
    progress_end(&p);
    rt_trace_close(trace);
    rt_free_ctx_varying(&ctx);

    rt_metrics final = rt_evaluate(m, fixed, NULL, NULL, 0);
    finish(m, fixed, o);
    FILE *out = summary_stream(trace);
    fprintf(out, "final loss %.9g\n", rt_mean_loss(final));
    print_params(out, m, fixed);
    return 0;
}

/* What the update steps of train_on_data share. */
typedef struct trainer {
    const nnrt_model *m;
    const rt_options *o;
    const rt_optimizer *opt;
    const rt_dataset *d;
    nnrt_ctx ctx;
    rt_trace *trace; /* NULL without --trace */
    int64_t steps_done;
} trainer;

/* The mean loss on rows[0..count) at the current weights, for the trace. The rows are copied
 * in again: the model may have reused the memory of its inputs. */
static double batch_loss(trainer *t, const int64_t *rows, int64_t count) {
    rt_fill_batch(t->m, &t->ctx, t->d, rows, 0, count, 1);
    t->m->forward(&t->ctx);
    return rt_batch_cost(t->m, &t->ctx);
}

/* One update on rows[0..count), added to the epoch's metrics. The trace gets the values
 * after it and the loss there on the same rows; before the first update, also the starting
 * point (step 0) on the first batch. */
static void update(trainer *t, const int64_t *rows, int64_t count, rt_metrics *r) {
    if (t->trace && t->steps_done == 0)
        rt_trace_row(t->trace, 0, t->ctx.fixed, batch_loss(t, rows, count));
    rt_fill_batch(t->m, &t->ctx, t->d, rows, 0, count, 1);
    t->opt->step(t->m, &t->ctx, t->o);
    rt_add_batch_metrics(t->m, &t->ctx, t->d, rows, 0, r);
    t->steps_done++;
    if (t->trace) rt_trace_row(t->trace, t->steps_done, t->ctx.fixed, batch_loss(t, rows, count));
}

/* Without any update (--epochs 0) the trace still has its starting point, on the first
 * batch of training rows in file order. */
static void trace_start_only(trainer *t, const row_split *split, int64_t batch) {
    if (!t->trace || t->steps_done > 0) return;
    int64_t count = split->n_train < batch ? split->n_train : batch;
    rt_trace_row(t->trace, 0, t->ctx.fixed, batch_loss(t, split->train, count));
}

/* Epochs over the data; stops early after o->steps updates when that is set. */
static int train_on_data(const nnrt_model *m, const rt_options *o, void *fixed, rt_trace *trace) {
    if (o->batch < 1) rt_usage_error("the batch size must be at least 1 (give --batch N)");
    rt_dataset d;
    rt_load_training_data(m, o->data, &d);
    row_split split = split_rows(d.rows, o->validation, o->seed);
    int64_t batch = o->batch < split.n_train ? o->batch : split.n_train;
    int64_t steps_per_epoch = (split.n_train + batch - 1) / batch;
    int64_t epochs = o->epochs;
    if (o->steps > 0) { /* the epochs the step limit reaches into, for "epoch i/N" */
        int64_t reached = (o->steps + steps_per_epoch - 1) / steps_per_epoch;
        if (reached < epochs) epochs = reached;
    }

    trainer t = {m,     o, find_optimizer(m->train.optimizer), &d, rt_new_ctx(m, fixed, batch),
                 trace, 0};
    int64_t *order = rt_alloc_array((size_t)split.n_train, sizeof *order);
    memcpy(order, split.train, (size_t)split.n_train * sizeof *order);
    rt_rng shuffle_rng;
    rt_rng_seed(&shuffle_rng, o->seed, RT_STREAM_SHUFFLE);

    progress p = progress_begin(m, o);
    for (int64_t epoch = 1; epoch <= epochs; epoch++) {
        if (o->shuffle) shuffle_rows(order, split.n_train, &shuffle_rng);
        rt_metrics r = {0};
        for (int64_t i = 0; i < split.n_train; i += batch) {
            if (o->steps > 0 && t.steps_done == o->steps) break;
            int64_t count = split.n_train - i < batch ? split.n_train - i : batch;
            update(&t, order + i, count, &r);
        }
        progress_report(&p, epoch, epochs, r);
    }
    progress_end(&p);
    trace_start_only(&t, &split, batch);
    rt_trace_close(trace);
    rt_free_ctx_varying(&t.ctx);

    /* The final lines come from the final weights over all training rows in file order,
     * the way eval reads a file, so eval on the same data prints the same loss. */
    rt_metrics final = rt_evaluate(m, fixed, &d, split.train, split.n_train);
    finish(m, fixed, o);
    int classify = m->train.classification;
    FILE *out = summary_stream(trace);
    fprintf(out, "final loss %.9g\n", rt_mean_loss(final));
    if (classify) fprintf(out, "final accuracy %.4f\n", rt_accuracy(final));
    if (split.n_validation > 0) {
        rt_metrics v = rt_evaluate(m, fixed, &d, split.validation, split.n_validation);
        fprintf(out, "validation loss %.9g\n", rt_mean_loss(v));
        if (classify) fprintf(out, "validation accuracy %.4f\n", rt_accuracy(v));
    }
    return 0;
}

int rt_cmd_train(const nnrt_model *m, const rt_options *o) {
    if (o->save) rt_check_writable(o->save);
    rt_trace *trace = rt_trace_open(m, o);
    void *fixed = rt_new_fixed_arena(m);
    rt_start_weights(m, fixed, o->init_weights, o->seed);
    return m->n_inputs > 0 ? train_on_data(m, o, fixed, trace) : train_function(m, o, fixed, trace);
}
