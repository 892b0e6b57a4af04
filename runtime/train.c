/* train.c: the training loop. Rows are split once into training and validation rows,
 * reshuffled every epoch, gathered into batches and handed to the optimizer (optim.c);
 * after each epoch the validation rows are measured, early stopping decides, and a
 * checkpoint may be written. Progress goes to progress.c, a row per step to the --trace
 * CSV, the final lines to stdout (stderr when the trace is on stdout). Nothing in the loop
 * allocates: every buffer exists before the first step. */
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "conv.h"
#include "files.h"
#include "grad_sum.h"
#include "hogwild.h"
#include "init.h"
#include "lines_ahead.h"
#include "optim.h"
#include "plot.h"
#include "progress.h"
#include "ranks.h"
#include "rng.h"
#include "text.h"
#include "trace.h"
#include "two_ways.h"
#include "util.h"
#include "workers.h"

/* ---- rows ---- */

/* The validation rows are the last round(fraction * n) of a seeded permutation; both sets
 * keep file order, so with --shuffle off training visits rows as the file lists them. */
static void split_rows(rt_train_data *data, int64_t n, double fraction, int64_t seed) {
    data->n_validation = (int64_t)llround(fraction * (double)n);
    data->n_train = n - data->n_validation;
    if (data->n_train < 1)
        rt_usage_error("--validation %.15g holds out all %lld row%s", fraction, (long long)n,
                       n == 1 ? "" : "s");
    unsigned char *held_out = rt_alloc((size_t)n);
    if (data->n_validation > 0) {
        int64_t *perm = rt_alloc_array((size_t)n, sizeof *perm);
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        rt_rng rng;
        rt_rng_seed(&rng, seed, RT_STREAM_SPLIT);
        rt_rng_shuffle(&rng, perm, n);
        for (int64_t i = data->n_train; i < n; i++) held_out[perm[i]] = 1;
        rt_free(perm);
    }
    data->train_rows = rt_alloc_array((size_t)data->n_train, sizeof(int64_t));
    data->validation_rows = rt_alloc_array((size_t)(data->n_validation + 1), sizeof(int64_t));
    int64_t t = 0, v = 0;
    for (int64_t i = 0; i < n; i++) {
        if (held_out[i])
            data->validation_rows[v++] = i;
        else
            data->train_rows[t++] = i;
    }
    rt_free(held_out);
}

static void all_rows(int64_t **rows, int64_t n) {
    *rows = rt_alloc_array((size_t)(n + 1), sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) (*rows)[i] = i;
}

/* Text data: the vocabulary in force is the one saved with the starting weights (--resume,
 * --init-weights) when they have one, so that a character keeps the id it was trained with;
 * else the training text's own. The held-out part is the END of the text, a fraction of its
 * characters, and windows are cut within each part: no held-out character is ever in a
 * training window, whatever the stride. */
static void load_text_train_data(const nnrt_model *m, const rt_options *o, rt_train_data *data) {
    if (o->standardize)
        rt_usage_error("--standardize is for numeric inputs; text data feeds token ids");
    const char *start = o->resume ? o->resume : o->init_weights;
    rt_vocab saved = {0, NULL};
    if (start) rt_vocab_of_weights(start, &saved);
    rt_text_data text =
        rt_load_text(m, o->data, &saved, start ? rt_vocab_source("the weights", start) : NULL);
    data->stats.vocab = text.vocab;
    if (o->validation_data) {
        if (o->validation > 0)
            rt_usage_error("give --validation F or --validation-data FILE, not both");
        rt_text_dataset(m, text.path, text.ids, text.n_ids, o->stride, "the text", &data->train);
        rt_text_data held = rt_load_text(m, o->validation_data, &text.vocab,
                                         rt_vocab_source("the training text", text.path));
        rt_text_dataset(m, held.path, held.ids, held.n_ids, o->stride, "the validation text",
                        &data->separate);
    } else {
        int64_t held_out = (int64_t)llround(o->validation * (double)text.n_ids);
        int64_t head = text.n_ids - held_out;
        char what[96];
        snprintf(what, sizeof what, "the training part of the text (--validation %g)",
                 o->validation);
        rt_text_dataset(m, text.path, text.ids, head, o->stride, held_out > 0 ? what : "the text",
                        &data->train);
        if (held_out > 0) {
            snprintf(what, sizeof what, "the held-out end of the text (--validation %g)",
                     o->validation);
            rt_text_dataset(m, text.path, text.ids + head, held_out, o->stride, what,
                            &data->separate);
        }
    }
    data->validation = &data->separate;
    data->n_train = data->train.rows;
    all_rows(&data->train_rows, data->n_train);
    data->n_validation = data->separate.rows;
    all_rows(&data->validation_rows, data->n_validation);
}

/* "-" names standard input, which can be read once, and by one process. */
static void check_stdin_data(const rt_options *o) {
    bool data = rt_is_dash(o->data), held = rt_is_dash(o->validation_data);
    if (data && held)
        rt_usage_error("--data - and --validation-data - both name standard input, which can be "
                       "read once: give one of them a file");
    if ((data || held) && rt_ranks() > 1)
        rt_usage_error("%s -: under mpirun standard input reaches rank 0 alone, and every rank "
                       "reads the data: give a file",
                       data ? "--data" : "--validation-data");
}

void rt_load_train_data(const nnrt_model *m, const rt_options *o, rt_train_data *data) {
    check_stdin_data(o);
    memset(data, 0, sizeof *data);
    data->validation = &data->train;
    if (m->n_inputs == 0) { /* a function to minimise: one step is one "row" */
        data->train.rows = 1;
        all_rows(&data->train_rows, 1);
        data->n_train = 1;
        all_rows(&data->validation_rows, 0);
        return;
    }
    if (rt_is_text_model(m)) {
        if (o->columns) rt_usage_error("--columns is for CSV data; this model reads text");
        load_text_train_data(m, o, data);
        return;
    }
    rt_load_data_columns(m, o->data, o->columns, &data->train);
    if (o->validation_data) {
        if (o->validation > 0)
            rt_usage_error("give --validation F or --validation-data FILE, not both");
        rt_load_data_columns(m, o->validation_data, o->columns, &data->separate);
        data->validation = &data->separate;
        data->n_train = data->train.rows;
        all_rows(&data->train_rows, data->n_train);
        data->n_validation = data->separate.rows;
        all_rows(&data->validation_rows, data->n_validation);
    } else {
        split_rows(data, data->train.rows, o->validation, o->seed);
    }
    if (!o->standardize) return;
    /* Statistics of the training rows only: the validation rows stand for unseen data. */
    rt_compute_stats(&data->train, data->train_rows, data->n_train, m->f64, &data->stats);
    rt_apply_stats(&data->train, &data->stats, m->f64);
    if (data->validation == &data->separate) rt_apply_stats(&data->separate, &data->stats, m->f64);
}

/* ---- weights ---- */

double rt_dropout_keep(const rt_options *o) {
    return isnan(o->dropout) ? 0 : 1 - o->dropout; /* 1 - rate in double, as nnc computes it */
}

void rt_start_weights(const nnrt_model *m, void *fixed, const rt_options *o) {
    rt_rng rng; /* every param is drawn, so one the file lacks starts as without the file */
    rt_rng_seed(&rng, o->seed, RT_STREAM_INIT);
    rt_init_params(m, fixed, &rng);
    if (o->init_weights) rt_load_matching_weights(m, fixed, o->init_weights);
    if (o->set) rt_set_params(m, fixed, o->set, "--set");
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

/* The weights a file saves: the params, then the states (running statistics). */
static int32_t n_weights(const nnrt_model *m) {
    return m->n_params + m->n_states;
}

static const nnrt_tensor *weight(const nnrt_model *m, int32_t i) {
    return i < m->n_params ? &m->params[i] : &m->states[i - m->n_params];
}

static int64_t total_weight_elems(const nnrt_model *m) {
    int64_t n = 0;
    for (int32_t i = 0; i < n_weights(m); i++) n += weight(m, i)->numel;
    return n;
}

/* Params and states to and from a flat copy (early stopping's best weights). */
static void copy_weights(const nnrt_model *m, void *fixed, void *flat, int to_flat) {
    size_t esize = rt_elem_size(m->f64), at = 0;
    for (int32_t i = 0; i < n_weights(m); i++) {
        const nnrt_tensor *t = weight(m, i);
        char *p = rt_elem_ptr(fixed, t->offset, m->f64), *c = (char *)flat + at;
        size_t bytes = (size_t)t->numel * esize;
        memcpy(to_flat ? c : p, to_flat ? p : c, bytes);
        at += bytes;
    }
}

/* ---- the run ---- */

/* FAULTED: a trial whose loss or gradient went non-finite (a train run exits instead). */
enum stop { RUNNING, FINISHED, STOPPED_EARLY, FAULTED };

/* A value per param measured at each epoch's last step (--log-grad-norms,
 * --log-update-ratios): `now`, the last step's (NaN for a param without a gradient), and
 * this process's rows of them for the plot, 1 + n_params columns (the epoch first), at most
 * RT_NORM_MAX_ROWS, thinned as the history. now is NULL when not measured. */
typedef struct param_series {
    double *now, *rows;
    int64_t n_rows;
} param_series;

/* Elements [offset, offset + numel) of the arena: weights that lie one after the other. */
typedef struct weight_run {
    int64_t offset, numel;
} weight_run;

/* Everything a training run holds; the fields under "state" are what a checkpoint saves
 * besides the params and the optimizer's state (the table `fields` below). */
typedef struct run {
    const nnrt_model *m;
    const rt_options *o;
    const rt_train_data *data;
    void *fixed;
    rt_optim *opt;
    nnrt_ctx ctx, eval_ctx; /* with --workers, ctx is worker 0's: a share of the batch */
    rt_workers *workers;    /* NULL with one worker */
    rt_trace *trace;        /* NULL without --trace */
    rt_progress *progress;  /* NULL for a search trial */
    int trial;
    int64_t batch, epochs;
    int batch_in_arena; /* a whole-set batch is in ctx's inputs and targets (whole_set_batch) */
    enum stop stop;
    double epoch_start;
    /* The weights' memory in the arena as runs of adjacent tensors (weight_runs), what the
     * check after each epoch scans: a call a run, not one a tensor. */
    weight_run *weight_runs;
    int32_t n_weight_runs;
    /* state */
    int64_t epoch; /* epochs completed */
    int64_t step;  /* update steps in all: the optimizer's t */
    int64_t pos;   /* rows of the current epoch done; 0 between epochs */
    rt_metrics partial;
    rt_rng shuffle_rng, noise_rng;
    int64_t *order;
    double best;
    int64_t best_epoch, bad_epochs;
    void *best_params;
    double *history;      /* RT_HIST_MAX_ROWS rows of RT_HIST_COLS (plot.h) */
    int64_t history_rows; /* rows in it: every epoch done, thinned when it filled up */
    /* --log-grad-norms: the norm of each param's gradient; --log-update-ratios: each
     * param's ||update|| / ||weights before it||, with the weights before the step in
     * before_update (the params' elements, one after the other). */
    param_series grad_norms, update_ratios;
    void *before_update;
    /* --plot of a model without inputs whose params hold 1 or 2 numbers in all (path_dims):
     * those numbers at the start and after each step, at most RT_HIST_MAX_ROWS rows, thinned
     * as the history; else NULL. */
    double *path;
    int64_t path_rows;
    int path_dims;
    rt_hogwild *hogwild; /* --hogwild's threads, made at its first epoch; else NULL */
    /* Ranks (docs/mpi.md): this process is rank `rank` of `ranks`; with more than one, the
     * ranks on one machine train in `window` (ranks.h), else each step's gradients go
     * through `grad_sum`, and `agreed_stop` is the Ctrl-C the ranks agreed on at the last step. */
    int rank, ranks;
    rt_rank_window *window;
    double *rank_weights;    /* each rank's weight in the step's sum */
    const char **rank_grads; /* where each rank's gradient of a param is, for the sum */
    rt_grad_sum *grad_sum;
    int agreed_stop;
    rt_two_ways asks;   /* one process's steps: 1 asks for the next batch at once, 0 queues it */
    rt_two_ways evicts; /* ranks in shared memory: 1 takes the others' params out of the caches */
} run;

/* The trials of two ways (two_ways.h): warm-up steps, steps timed, steps a block. How one
 * process asks for the next batch: W1's steps take 40-90 us, so the trial lasts a few
 * hundredths of a second. Whether ranks in shared memory take the others' params out of the
 * caches: W2's steps on 2 ranks take about 2 ms, so fewer steps, a tenth of a second. */
enum { ASK_TRIAL_WARMUP = 64, ASK_TRIAL_STEPS = 512, ASK_TRIAL_BLOCK = 8 };
enum { EVICT_TRIAL_WARMUP = 8, EVICT_TRIAL_STEPS = 64, EVICT_TRIAL_BLOCK = 4 };

static int has_inputs(const run *r) {
    return r->m->n_inputs > 0;
}

/* A batch that holds every training row: each epoch is one step on the same rows. Their
 * order changes nothing but the rounding of the batch's sums, so they are not shuffled, by
 * one process, workers and ranks alike (their weights stay one process's). In one process
 * the step's inputs and targets, which the model never writes (nnrt.h), are gathered once,
 * not every step. Hogwild's threads shard the rows: they are shuffled. */
static int whole_set_batch(const run *r) {
    return has_inputs(r) && r->batch >= r->data->n_train && r->o->hogwild == 0;
}

static void check_settings(const rt_options *o, const nnrt_model *m, int64_t n_validation) {
    if (o->early_stopping && n_validation == 0)
        rt_usage_error("--early-stopping needs validation rows (--validation F or "
                       "--validation-data FILE)");
    if (strcmp(o->monitor, "accuracy") == 0 && !m->train.classification)
        rt_usage_error("--monitor accuracy: model '%s' has no accuracy (its metric is none)",
                       m->name);
}

/* --log-grad-norms and --log-update-ratios are measured for the log's columns and the plot's
 * panel alone: without either, nothing would show them. Checked on the options as given, on
 * every rank (the others' lose --log and --plot: only_rank0_writes). */
static void check_watching_shows(const rt_options *o) {
    if ((o->log_grad_norms || o->log_update_ratios) && !o->log && !o->plot)
        rt_usage_error("%s writes columns of --log and a panel of --plot: give --log FILE or "
                       "--plot FILE",
                       o->log_grad_norms ? "--log-grad-norms" : "--log-update-ratios");
}

/* What --workers N cannot do (docs/runtime.md, "Data-parallel workers"): each is refused
 * rather than done differently from one worker. */
static void check_workers(const run *r) {
    const rt_options *o = r->o;
    int64_t n = o->workers;
    if (!has_inputs(r))
        rt_usage_error("--workers %lld: model '%s' has no inputs, so no batch to split",
                       (long long)n, r->m->name);
    if (r->batch < n)
        rt_usage_error("--workers %lld splits each batch into %lld shares, but the batch is %lld "
                       "row%s: give --batch %lld or more, or fewer workers",
                       (long long)n, (long long)n, (long long)r->batch, r->batch == 1 ? "" : "s",
                       (long long)n);
    if (o->threads != 1)
        rt_usage_error("--workers %lld runs OpenBLAS with one thread in each worker: give "
                       "--workers N or --threads N, not both",
                       (long long)n);
    if (o->trace)
        rt_usage_error("--trace is not available with --workers %lld: run it with one worker",
                       (long long)n);
    if (o->log_grad_norms || o->log_update_ratios)
        rt_usage_error("%s is not available with --workers %lld: run it with one worker",
                       o->log_grad_norms ? "--log-grad-norms" : "--log-update-ratios",
                       (long long)n);
    if (o->hogwild > 0)
        rt_usage_error("--workers %lld and --hogwild %lld are two ways to train on several "
                       "threads: give one of them",
                       (long long)n, (long long)o->hogwild);
}

static void start_ranks(run *r);
static void share_among_ranks(run *r);

static void series_init(param_series *s, const nnrt_model *m) {
    s->now = rt_alloc_array((size_t)m->n_params + 1, sizeof(double));
    s->rows = rt_alloc_array((size_t)RT_NORM_MAX_ROWS * ((size_t)m->n_params + 1), sizeof(double));
}

static void series_free(param_series *s) {
    rt_free(s->now);
    rt_free(s->rows);
}

static int64_t total_param_elems(const nnrt_model *m) {
    int64_t n = 0;
    for (int32_t i = 0; i < m->n_params; i++) n += m->params[i].numel;
    return n;
}

/* Merges the weights (params, then states) that follow each other in the arena into runs:
 * most models' weights are one or two. */
static void find_weight_runs(run *r) {
    const nnrt_model *m = r->m;
    r->weight_runs = rt_alloc_array((size_t)n_weights(m) + 1, sizeof *r->weight_runs);
    r->n_weight_runs = 0;
    for (int32_t i = 0; i < n_weights(m); i++) {
        const nnrt_tensor *t = weight(m, i);
        weight_run *last = r->n_weight_runs > 0 ? &r->weight_runs[r->n_weight_runs - 1] : NULL;
        if (last && last->offset + last->numel == t->offset)
            last->numel += t->numel;
        else
            r->weight_runs[r->n_weight_runs++] = (weight_run){t->offset, t->numel};
    }
}

static void run_init(run *r, const nnrt_model *m, const rt_options *o, const rt_train_data *data,
                     void *fixed) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->o = o;
    r->data = data;
    r->fixed = fixed;
    check_settings(o, m, data->n_validation);
    if (o->hogwild > 0) rt_hogwild_check(o, data->n_train);
    if (has_inputs(r)) {
        if (o->batch < 1) rt_usage_error("the batch size must be at least 1 (give --batch N)");
        r->batch = o->batch < data->n_train ? o->batch : data->n_train;
        int64_t steps_per_epoch = (data->n_train + r->batch - 1) / r->batch;
        r->epochs = o->epochs;
        if (o->steps > 0) { /* the epochs the step limit reaches into, for "epoch i/N" */
            int64_t reached = o->steps / steps_per_epoch + (o->steps % steps_per_epoch != 0);
            if (reached < r->epochs) r->epochs = reached;
        }
    } else {
        r->batch = 1;
        r->epochs = o->steps > 0 ? o->steps : o->epochs;
        if (r->epochs < 1) rt_usage_error("no step count: give --steps N");
    }
    r->rank = rt_rank();
    r->ranks = rt_ranks();
    rt_two_ways_start(&r->asks, ASK_TRIAL_WARMUP, ASK_TRIAL_STEPS, ASK_TRIAL_BLOCK);
    rt_two_ways_start(&r->evicts, EVICT_TRIAL_WARMUP, EVICT_TRIAL_STEPS, EVICT_TRIAL_BLOCK);
    if (r->ranks > 1) start_ranks(r);
    if (o->workers > 1) {
        check_workers(r);
        /* a model with a team's step: the threads split each step, not the batch, plain sgd
         * through the fused sgd_step_team */
        r->opt = rt_optim_new(m, fixed, o,
                              m->sgd_step_team ? RT_OPTIM_FUSE_WHEN_ABLE : RT_OPTIM_FROM_GRADIENTS);
        int whole = rt_optim_fused(r->opt) || m->grad_team; /* the team's step (workers.h) */
        int64_t cap = whole ? r->batch : rt_workers_cap(r->batch, (int)o->workers);
        r->ctx = rt_new_ctx(m, fixed, cap);
        r->ctx.dropout_keep = rt_dropout_keep(o);
        r->workers = rt_workers_start(m, &r->ctx, r->opt, (int)o->workers);
    } else {
        r->opt = rt_optim_new(m, fixed, o,
                              r->ranks > 1 ? RT_OPTIM_FROM_GRADIENTS : RT_OPTIM_FUSE_WHEN_ABLE);
        r->ctx = rt_new_ctx(m, fixed, r->batch);
        r->ctx.dropout_keep = rt_dropout_keep(o);
    }
    find_weight_runs(r);
    int64_t n_val = data->n_validation;
    r->eval_ctx = rt_new_ctx(m, fixed, rt_eval_batch(m, n_val));
    if (r->ranks > 1) share_among_ranks(r);
    r->order = rt_alloc_array((size_t)data->n_train, sizeof *r->order);
    memcpy(r->order, data->train_rows, (size_t)data->n_train * sizeof *r->order);
    rt_rng_seed(&r->shuffle_rng, o->seed, RT_STREAM_SHUFFLE);
    rt_rng_seed(&r->noise_rng, o->seed, RT_STREAM_NOISE);
    r->best = strcmp(o->monitor, "accuracy") == 0 ? -INFINITY : INFINITY;
    if (o->early_stopping)
        r->best_params = rt_alloc_array((size_t)total_weight_elems(m), rt_elem_size(m->f64));
    r->history = rt_alloc_array((size_t)RT_HIST_MAX_ROWS * RT_HIST_COLS, sizeof(double));
    if (o->log_grad_norms) {
        if (!m->grad) rt_fatal("model descriptor: no grad entry point");
        series_init(&r->grad_norms, m);
    }
    if (o->log_update_ratios) {
        series_init(&r->update_ratios, m);
        r->before_update = rt_alloc_array((size_t)total_weight_elems(m), rt_elem_size(m->f64));
    }
    if (o->plot && !has_inputs(r) && total_param_elems(m) <= 2 && total_param_elems(m) > 0) {
        r->path_dims = (int)total_param_elems(m);
        r->path = rt_alloc_array((size_t)RT_HIST_MAX_ROWS * (size_t)r->path_dims, sizeof(double));
    }
}

static void run_free(run *r) {
    rt_workers_stop(r->workers);
    rt_hogwild_free(r->hogwild);
    rt_optim_free(r->opt);
    rt_grad_sum_free(r->grad_sum);
    rt_rank_window_free(r->window);
    rt_free(r->rank_weights);
    rt_free(r->rank_grads);
    rt_free_ctx_varying(&r->ctx);
    rt_free_ctx_varying(&r->eval_ctx);
    rt_free(r->order);
    rt_free(r->weight_runs);
    rt_free(r->best_params);
    rt_free(r->history);
    series_free(&r->grad_norms);
    series_free(&r->update_ratios);
    rt_free(r->before_update);
    rt_free(r->path);
}

/* ---- faults ---- */

/* "epoch 3, step 17" or, without inputs, "step 17". */
static void where(const run *r, char *buf, size_t size) {
    if (has_inputs(r))
        snprintf(buf, size, "epoch %lld, step %lld", (long long)r->epoch + 1, (long long)r->step);
    else
        snprintf(buf, size, "step %lld", (long long)r->step);
}

static _Noreturn void stop_training(run *r, const char *what) {
    if (r->progress) rt_progress_pause(r->progress);
    rt_fatal("%s; training stopped. A lower learning rate (--lr, now %g) or clipping the "
             "gradients (--clip 1) usually helps",
             what, r->o->lr);
}

static _Noreturn void fault(run *r, double cost, int32_t param, enum rt_fault kind) {
    char at[96], what[512];
    where(r, at, sizeof at);
    if (!isfinite(cost) && param >= 0 && kind == RT_FAULT_VALUE)
        snprintf(what, sizeof what, "param '%s' became nan or inf, and the loss with it at %s",
                 r->m->params[param].name, at);
    else if (!isfinite(cost))
        snprintf(what, sizeof what, "the loss became %s at %s", isnan(cost) ? "nan" : "inf", at);
    else if (kind == RT_FAULT_VALUE)
        snprintf(what, sizeof what, "param '%s' became nan or inf after the update at %s",
                 r->m->params[param].name, at);
    else
        snprintf(what, sizeof what, "the gradient of '%s' is nan or inf at %s",
                 r->m->params[param].name, at);
    stop_training(r, what);
}

/* The first weight (param, then state) holding a nan or inf, or -1. */
static int32_t nonfinite_weight(const nnrt_model *m, const void *fixed) {
    for (int32_t i = 0; i < n_weights(m); i++) {
        const nnrt_tensor *t = weight(m, i);
        if (rt_any_nonfinite(rt_elem_cptr(fixed, t->offset, m->f64), t->numel, m->f64)) return i;
    }
    return -1;
}

/* Whether every weight is finite: a scan of each run of adjacent weights (find_weight_runs),
 * which costs a tiny model's epoch a call or two rather than one a tensor. */
static int weights_finite(const run *r) {
    int f64 = r->m->f64;
    for (int32_t i = 0; i < r->n_weight_runs; i++) {
        const weight_run *w = &r->weight_runs[i];
        if (rt_any_nonfinite(rt_elem_cptr(r->fixed, w->offset, f64), w->numel, f64)) return 0;
    }
    return 1;
}

/* The fused sgd_step is checked through the step's loss alone (optim.c), which a param gone
 * nan or inf does not always reach: behind a relu whose input stays negative, or made by the
 * last step. So every param, and every state (running statistics, which the loss of a
 * training step never reads), is checked after each epoch and before anything is saved: no
 * run ends "successfully", and nothing is saved, with weights that are not numbers. A search
 * trial is marked FAULTED instead; returns 0 then. */
static int params_finite(run *r) {
    if (weights_finite(r)) return 1;
    int32_t bad = nonfinite_weight(r->m, r->fixed); /* which one */
    if (r->trial) {
        r->stop = FAULTED;
        return 0;
    }
    const char *name = weight(r->m, bad)->name;
    const char *kind = bad < r->m->n_params ? "param" : "state";
    if (r->step == 0) rt_fatal("%s '%s' is nan or inf in the starting weights", kind, name);
    /* the epoch of the last step: the current one when it is under way */
    int64_t epoch = r->pos > 0 ? r->epoch + 1 : r->epoch;
    char at[96], what[512];
    if (has_inputs(r))
        snprintf(at, sizeof at, "epoch %lld, step %lld", (long long)epoch, (long long)r->step);
    else
        snprintf(at, sizeof at, "step %lld", (long long)r->step);
    snprintf(what, sizeof what, "%s '%s' became nan or inf by %s (the loss did not show it)", kind,
             name, at);
    if (bad >= r->m->n_params) { /* batch_mean(..., correction = 1) of one sample is 0/0 */
        if (r->progress) rt_progress_pause(r->progress);
        rt_fatal("%s; training stopped. An unbiased variance (batch_mean(..., correction = 1)) "
                 "of a batch of one sample is 0/0: train with batches of 2 or more, and a batch "
                 "size that leaves no single row at an epoch's end",
                 what);
    }
    stop_training(r, what);
}

/* ---- steps ---- */

/* The mean loss on rows[0..count) at the current weights, for the trace, with dropout off;
 * when the trace shows gradients, by grad(), which leaves them at these weights in the grad
 * buffers (the next step computes its own). The rows are copied in: before the first step
 * the arena holds no batch. */
static double batch_loss(run *r, const int64_t *rows, int64_t count) {
    rt_fill_batch(r->m, &r->ctx, &r->data->train, rows, 0, count, 1);
    if (rt_trace_needs_grad(r->trace))
        r->m->grad(&r->ctx);
    else
        r->m->forward(&r->ctx);
    return rt_batch_cost(r->m, &r->ctx);
}

/* --log-grad-norms, at an epoch's last step: the gradient that step is about to use, by a
 * grad() of its own on the same batch with the same noise_seed (the fused sgd_step never
 * stores its gradients, and the other optimizers add penalties and clip them in place).
 * grad() leaves the params and the optimizer's state alone, and in NNRT_TRAINING mode the
 * states too (the step writes their updates once), so the run's weights are the same bits as
 * without the option. grad() leaves the inputs as they are (nnrt.h), so the step runs on the
 * batch already gathered. */
static void grad_norms_of(run *r) {
    const nnrt_model *m = r->m;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        double sum = 0;
        for (int64_t e = 0; t->grad_offset >= 0 && e < t->numel; e++) {
            double g = rt_get(r->fixed, t->grad_offset + e, m->f64);
            sum += g * g;
        }
        r->grad_norms.now[i] = t->grad_offset >= 0 ? sqrt(sum) : NAN;
    }
}

static void measure_grad_norms(run *r) {
    r->ctx.training = NNRT_TRAINING; /* the step that follows writes the states' updates */
    r->m->grad(&r->ctx);
    r->ctx.training = NNRT_TRAINING_STEP;
    grad_norms_of(r);
}

/* The step about to run on count rows ends its epoch (or the run, at --steps). */
static int last_step_of_epoch(const run *r, int64_t count) {
    if (!has_inputs(r)) return 1;
    return r->pos + count >= r->data->n_train || (r->o->steps > 0 && r->step + 1 == r->o->steps);
}

/* --log-update-ratios: before an epoch's last step the weights go to before_update
 * (copy_weights), and after it each param's ||new - old|| / ||old|| is taken (NaN without a
 * gradient; inf when the old weights were all 0 and the step moved them). */
static void update_ratios_of(run *r) {
    const nnrt_model *m = r->m;
    int64_t at = 0; /* the params come first in the copy */
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        double moved = 0, size = 0;
        for (int64_t e = 0; e < t->numel; e++) {
            double now = rt_get(r->fixed, t->offset + e, m->f64);
            double old = rt_get(r->before_update, at + e, m->f64);
            moved += (now - old) * (now - old);
            size += old * old;
        }
        at += t->numel;
        r->update_ratios.now[i] = t->grad_offset < 0 ? NAN : sqrt(moved) / sqrt(size);
    }
}

/* A step's outcome: 0 when the loss or the update failed (a train run stops with a message,
 * a search trial is marked). */
static int step_ok(run *r, double cost, int32_t bad, enum rt_fault kind) {
    if (isfinite(cost) && bad < 0) return 1;
    if (!r->trial) fault(r, cost, bad, kind);
    r->stop = FAULTED;
    return 0;
}

/* The rows of the epoch's next batch, after rows[0..count) (the order's): how many there
 * are. The step asks for them while it runs, so that their gather finds them in the caches
 * (model.c, rt_prefetch_batch). */
static int64_t next_batch_rows(const run *r, const int64_t *rows, int64_t count) {
    int64_t left = r->order + r->data->n_train - (rows + count);
    return left < r->batch ? left : r->batch;
}

/* The same step split among the workers (workers.h): the same noise_seed, each worker's
 * share of the rows and their combined gradient, one update. */
static int workers_step(run *r, const int64_t *rows, int64_t count, double lr) {
    uint64_t noise_seed = rt_rng_next(&r->noise_rng);
    r->step++;
    enum rt_fault kind;
    int32_t bad = rt_workers_step(r->workers, &r->data->train, rows, count,
                                  next_batch_rows(r, rows, count), noise_seed, lr, r->step, &kind);
    /* The epoch's metrics and the step's cost in one pass, as train_step's. */
    double cost = rt_workers_add_metrics(r->workers, &r->data->train, &r->partial);
    if (bad < 0) bad = rt_optim_loss_outcome(r->opt, cost);
    if (!isfinite(cost) || bad >= 0) rt_workers_settle(r->workers); /* a fault reads them */
    return step_ok(r, cost, bad, kind);
}

static int rank_step(run *r, const int64_t *rows, int64_t count, double lr);

/* Asks for the next batch's rows the way this machine's steps have run faster: all at once
 * now, or queued for the step's products (lines_ahead.h). Queued, W1's loop ran 2% faster than
 * with every line asked for at once before the step on a Zen 4, and 1-2% slower on a Zen 5
 * (bench/README.md, "The next batch's lines: queued or at once, measured"), so the loop times
 * its first steps both ways (two_ways.h), each step with its gather. */
static void ask_for_next_batch(run *r, const int64_t *rows, int64_t count) {
    const int64_t *next = rows + count;
    int64_t n = next_batch_rows(r, rows, count);
    if (rt_two_ways_next(&r->asks))
        rt_prefetch_batch(r->m, &r->data->train, next, n);
    else
        rt_prefetch_batch_in_step(r->m, &r->data->train, next, n);
}

/* One update on rows[0..count), in training mode (nnrt.h): dropout on, batch statistics,
 * and the step writes the states' updates. Each step draws its own noise_seed from the
 * run's seed, so runs repeat bit for bit. Every other pass (trace, final loss, validation,
 * eval) sees NNRT_INFERENCE: dropout is the identity and running statistics are used. */
static int train_step(run *r, const int64_t *rows, int64_t count, double lr) {
    if (r->ranks > 1) return rank_step(r, rows, count, lr);
    if (r->workers) return workers_step(r, rows, count, lr);
    if (r->trace && r->step == 0) rt_trace_row(r->trace, 0, r->fixed, batch_loss(r, rows, count));
    /* The trial times only steps that gather their batch: a batch kept in the arena asks
     * for nothing, and a clock read would cost a one-step epoch a tenth of its time. */
    int timed = rt_two_ways_timing(&r->asks) && !r->batch_in_arena;
    double start = timed ? rt_now() : 0;
    if (!r->batch_in_arena) rt_fill_batch(r->m, &r->ctx, &r->data->train, rows, 0, count, 1);
    r->batch_in_arena = whole_set_batch(r);
    r->ctx.training = NNRT_TRAINING_STEP;
    r->ctx.noise_seed = rt_rng_next(&r->noise_rng);
    int last = last_step_of_epoch(r, count);
    if (r->grad_norms.now && last) measure_grad_norms(r);
    if (r->update_ratios.now && last) copy_weights(r->m, r->fixed, r->before_update, 1);
    r->step++;
    if (!r->batch_in_arena) ask_for_next_batch(r, rows, count); /* else it is this one, in place */
    enum rt_fault kind;
    int32_t bad = rt_optim_step(r->opt, &r->ctx, lr, r->step, &kind);
    if (!r->batch_in_arena) {
        rt_lines_ahead_rest();
        if (timed) rt_two_ways_took(&r->asks, rt_now() - start);
    }
    r->ctx.training = NNRT_INFERENCE;
    /* The epoch's metrics and the step's cost in one pass over the losses; a step that
     * faults ends the run (or the trial), whose metrics are then not read. */
    double cost = rt_add_batch_metrics(r->m, &r->ctx, &r->data->train, rows, 0, &r->partial);
    if (bad < 0) bad = rt_optim_loss_outcome(r->opt, cost);
    if (!step_ok(r, cost, bad, kind)) return 0;
    if (r->update_ratios.now && last) update_ratios_of(r);
    if (r->trace) rt_trace_row(r->trace, r->step, r->fixed, batch_loss(r, rows, count));
    return 1;
}

/* ---- epochs ---- */

/* Drops every other row, keeping the first: room for as many epochs again, at half the
 * density. The memory stays fixed whatever --epochs or --steps says. A row is a few numbers,
 * moved by a loop: a call to memmove a row was 1.3% of a one-step epoch (a row an epoch,
 * amortised). Row kept < i, so each number is read before it is overwritten. */
static void thin_rows(double *rows, int64_t *n, int64_t cols) {
    int64_t kept = 0;
    for (int64_t i = 0; i < *n; i += 2, kept++)
        for (int64_t c = 0; c < cols; c++) rows[kept * cols + c] = rows[i * cols + c];
    *n = kept;
}

static void record_series(run *r, param_series *s) {
    if (!s->now) return;
    int64_t cols = r->m->n_params + 1;
    if (s->n_rows == RT_NORM_MAX_ROWS) thin_rows(s->rows, &s->n_rows, cols);
    double *row = s->rows + s->n_rows++ * cols;
    row[0] = (double)r->epoch;
    memcpy(row + 1, s->now, (size_t)r->m->n_params * sizeof *row);
}

/* The params' numbers (1 or 2 in all), in the params' order, into point[] (get) or from it
 * (set). */
static void get_path_point(const run *r, double *point) {
    const nnrt_model *m = r->m;
    int k = 0;
    for (int32_t i = 0; i < m->n_params; i++)
        for (int64_t e = 0; e < m->params[i].numel; e++)
            point[k++] = rt_get(r->fixed, m->params[i].offset + e, m->f64);
}

static void set_path_point(run *r, const double *point) {
    const nnrt_model *m = r->m;
    int k = 0;
    for (int32_t i = 0; i < m->n_params; i++)
        for (int64_t e = 0; e < m->params[i].numel; e++)
            rt_set(r->fixed, m->params[i].offset + e, m->f64, point[k++]);
}

/* The descent path's next point: the params as they are now. */
static void record_path(run *r) {
    if (!r->path) return;
    if (r->path_rows == RT_HIST_MAX_ROWS) thin_rows(r->path, &r->path_rows, r->path_dims);
    get_path_point(r, r->path + r->path_rows++ * r->path_dims);
}

static void record_history(run *r, double lr, const rt_metrics *v) {
    record_series(r, &r->grad_norms);
    record_series(r, &r->update_ratios);
    record_path(r);
    if (r->history_rows == RT_HIST_MAX_ROWS) thin_rows(r->history, &r->history_rows, RT_HIST_COLS);
    double *row = r->history + r->history_rows++ * RT_HIST_COLS;
    row[RT_HIST_EPOCH] = (double)r->epoch;
    row[RT_HIST_LR] = lr;
    row[RT_HIST_LOSS] = rt_mean_loss(r->partial);
    row[RT_HIST_ACC] = r->m->train.classification ? rt_accuracy(r->partial) : NAN;
    row[RT_HIST_VAL_LOSS] = v ? rt_mean_loss(*v) : NAN;
    row[RT_HIST_VAL_ACC] = v && r->m->train.classification ? rt_accuracy(*v) : NAN;
}

/* Early stopping: keeps the best epoch's weights, counts epochs without improvement. */
static void watch(run *r, const rt_metrics *v) {
    if (!r->o->early_stopping || !v) return;
    int by_accuracy = strcmp(r->o->monitor, "accuracy") == 0;
    double value = by_accuracy ? rt_accuracy(*v) : rt_mean_loss(*v);
    if (by_accuracy ? value > r->best : value < r->best) {
        r->best = value;
        r->best_epoch = r->epoch;
        r->bad_epochs = 0;
        copy_weights(r->m, r->fixed, r->best_params, 1);
    } else if (++r->bad_epochs >= r->o->patience) {
        r->stop = STOPPED_EARLY;
    }
}

static void save_checkpoint(run *r, const char *path);

static void end_epoch(run *r, double lr) {
    if (!params_finite(r)) return; /* before validation and early stopping see the weights */
    const rt_train_data *d = r->data;
    rt_metrics v = {0};
    if (d->n_validation > 0)
        v = rt_evaluate_ctx(r->m, &r->eval_ctx, d->validation, d->validation_rows, d->n_validation);
    const rt_metrics *vp = d->n_validation > 0 ? &v : NULL;
    r->epoch++;
    r->pos = 0;
    record_history(r, lr, vp);
    if (r->progress) /* the clock's one read this epoch, and the next epoch's start */
        r->epoch_start = rt_progress_epoch(r->progress, r->epoch, r->epochs, r->partial, vp, lr,
                                           r->epoch_start, r->grad_norms.now, r->update_ratios.now);
    watch(r, vp);
    int64_t every = r->o->checkpoint_every;
    if (r->progress && every > 0 && r->epoch % every == 0) {
        save_checkpoint(r, r->o->checkpoint);
        r->epoch_start = rt_progress_now(r->progress); /* leaves the checkpoint out */
    }
}

/* ---- Ctrl-C ---- */

static volatile sig_atomic_t interrupted;

/* The first Ctrl-C lets the step finish and the state be saved; a second one ends the
 * process at once. */
static void on_interrupt(int sig) {
    (void)sig;
    if (interrupted) _exit(130);
    interrupted = 1;
}

static void catch_interrupts(int on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_interrupt : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    /* mpirun passes Ctrl-C on to the ranks as SIGTERM (and SIGKILL a second later). */
    if (rt_ranks() > 1) sigaction(SIGTERM, &sa, NULL);
    interrupted = 0;
}

/* Whether Ctrl-C stops the run now: with ranks, when any of them had it at the last step,
 * so that all stop at the same step. */
static int stop_asked(const run *r) {
    return r->ranks > 1 ? r->agreed_stop : interrupted;
}

static _Noreturn void stop_interrupted(run *r) {
    if (r->rank > 0) exit(130); /* rank 0 saves and says so */
    save_checkpoint(r, r->o->checkpoint);
    rt_progress_end(r->progress);
    rt_trace_close(r->trace);
    char at[96];
    if (has_inputs(r))
        snprintf(at, sizeof at, "epoch %lld (%lld of %lld rows), step %lld",
                 (long long)r->epoch + 1, (long long)r->pos, (long long)r->data->n_train,
                 (long long)r->step);
    else
        snprintf(at, sizeof at, "step %lld", (long long)r->step);
    char launch[32] = "";
    if (r->ranks > 1) snprintf(launch, sizeof launch, "mpirun -np %d ", r->ranks);
    fprintf(stderr,
            "%s: interrupted at %s; saved the training state to %s\n"
            "%s: continue with: %s%s train --resume %s (and the same options)\n",
            rt_program_name(), at, r->o->checkpoint, rt_program_name(), launch, rt_program_name(),
            r->o->checkpoint);
    if (r->o->hogwild > 0 && r->pos > 0)
        fprintf(stderr,
                "%s: (--hogwild: the threads' updates of this epoch so far are in the saved "
                "weights; a run resumed with --hogwild starts the epoch again)\n",
                rt_program_name());
    exit(130);
}

/* ---- HOGWILD! ---- */

static void hogwild_tick(void *arg, int64_t rows_done, rt_metrics thread0) {
    run *r = arg;
    if (r->progress)
        rt_progress_tick(r->progress, r->epoch + 1, r->epochs, rows_done, r->data->n_train,
                         thread0);
}

/* A whole epoch by --hogwild's threads (hogwild.c), in place of the steps of run_epochs:
 * always from the epoch's start (a checkpoint's pos is not a place in the threads' shards).
 * The step count counts every thread's steps. Ctrl-C stops each thread after its step and
 * saves the state once all have joined: the params with every update made so far, pos the
 * rows the threads did, the metrics of those rows. Returns 0 when the run has ended (the step
 * limit); a fault or Ctrl-C exits. */
static int hogwild_epoch(run *r, double lr) {
    const rt_train_data *d = r->data;
    if (r->o->steps > 0 && r->step >= r->o->steps) {
        r->stop = FINISHED;
        return 0;
    }
    if (!r->hogwild)
        r->hogwild =
            rt_hogwild_new(r->m, r->o, &r->ctx, &d->train, d->train_rows, d->n_train, r->batch);
    rt_hogwild_epoch e = {.epoch = r->epoch,
                          .lr = lr,
                          .step_limit = r->o->steps,
                          .steps = r->step,
                          .interrupted = &interrupted,
                          .tick = hogwild_tick,
                          .tick_arg = r};
    enum rt_hogwild_end end = rt_hogwild_run_epoch(r->hogwild, &e);
    r->step = e.steps;
    r->partial = e.metrics;
    r->pos = e.rows_done;
    if (end == RT_HOGWILD_FAULT) {
        int32_t bad = nonfinite_weight(r->m, r->fixed);
        fault(r, e.bad_cost, bad < r->m->n_params ? bad : -1, RT_FAULT_VALUE);
    }
    /* a Ctrl-C as the last rows were done ends the epoch first, as run_epochs does */
    if (end == RT_HOGWILD_INTERRUPTED && r->pos < d->n_train) stop_interrupted(r);
    r->pos = d->n_train;
    return 1;
}

/* ---- ranks (docs/mpi.md) ----
 *
 * Under mpirun every rank holds the whole data set and the same row order (the same seed),
 * and computes the gradient of its share of each step's batch, the rows worker k of K would
 * take (rt_worker_share: [ceil(k*B/K), ceil((k+1)*B/K)), so rank 0 always has rows). The
 * generated grad() averages over the rows it is given, so rank k's gradient g_k is weighted
 * b_k/B and the ranks add them up: sum_k (b_k/B) g_k is the mean over the whole batch. The
 * sum (ranks.h) gives every rank the same bits, so every rank makes the same update and the
 * ranks' weights never drift apart. The same sum carries rank 0's states (it alone runs the
 * step that writes them), the step's loss and correct count, and each rank's Ctrl-C. */

/* The extra numbers each step's sum carries besides the gradients and the states. */
enum { EXTRA_LOSS, EXTRA_CORRECT, EXTRA_STOP, N_EXTRAS };

/* Rank j's slice of the update's elements (rt_optim_elems: the gradients, in param order)
 * starts here; j = ranks is the end. Slices start at multiples of 16 elements (64 bytes). The
 * ranks add up and update a slice each in shared memory; by messages each rank updates all,
 * but clipping's sum of squares is added up by the same slices, so both give the same bits. */
static int64_t slice_first(const run *r, int j) {
    int64_t n = rt_optim_elems(r->opt);
    return j == r->ranks ? n : n * j / r->ranks / 16 * 16;
}

/* Rank k's share of the step's rows, and the weight of its gradient in the sum. */
static double rank_weight(const run *r, int k, int64_t count) {
    return (double)rt_worker_share(count, r->ranks, k).rows / (double)count;
}

/* ---- ranks in shared memory ----
 *
 * On one machine every rank's fixed arena lives in its segment of one window (ranks.h), so
 * grad() writes the gradients where the others read them. Rank 0's params are the only
 * copy the steps use: the others' ctx.params point at them. A step is grad() on the rank's
 * share, a barrier, then rank j adds up slice j of every rank's gradient in rank order (the
 * numbers and order of the sum by messages), updates slice j of the params and of its own
 * optimizer state (penalties and the update are elementwise; clipping waits at a second
 * barrier for every slice's sum of squares), and a last barrier: every param is updated
 * before the next grad() reads it. The other ranks' own params are brought up to date at
 * an epoch's end (validation, early stopping and the final checksum read them), and rank 0
 * gathers the optimizer's state from the slices' owners before it writes a checkpoint. */

/* What a rank tells the others at each step, at the start of its segment. */
typedef struct rank_note {
    double extras[N_EXTRAS];
    double sum_sq;                   /* its slice's sum of squares, for clipping */
    int32_t bad_gradient, bad_value; /* the first param of its slice at fault, or -1 */
} rank_note;

/* A segment: the note, the fixed arena, the optimizer's state, each on 64 bytes. */
#define NOTE_ROOM 64
_Static_assert(sizeof(rank_note) <= NOTE_ROOM, "a rank's note fits its room");

static size_t fixed_room(const nnrt_model *m) {
    return ((size_t)m->fixed_elems * rt_elem_size(m->f64) + 63) / 64 * 64;
}
static rank_note *note_of(const run *r, int k) {
    return rt_rank_window_segment(r->window, k);
}
static char *fixed_of(const run *r, int k) {
    return (char *)rt_rank_window_segment(r->window, k) + NOTE_ROOM;
}
static char *state_of(const run *r, int k) {
    return fixed_of(r, k) + fixed_room(r->m);
}

/* In one process's memory unless the ranks share a machine: then this rank's arena moves
 * into its segment, as its run and the optimizer see it. */
static void share_among_ranks(run *r) {
    const nnrt_model *m = r->m;
    r->window = rt_rank_window_new(NOTE_ROOM + fixed_room(m) + rt_optim_state_bytes(r->opt));
    if (!r->window) {
        r->grad_sum = rt_grad_sum_new(m, rt_mpi_bucket_bytes(), N_EXTRAS);
        return;
    }
    char *mine = fixed_of(r, r->rank), *params = fixed_of(r, 0);
    memcpy(mine, r->fixed, (size_t)m->fixed_elems * rt_elem_size(m->f64));
    r->fixed = r->ctx.fixed = r->eval_ctx.fixed = mine;
    r->ctx.params = params;
    r->rank_weights = rt_alloc_array((size_t)r->ranks, sizeof *r->rank_weights);
    r->rank_grads = rt_alloc_array((size_t)r->ranks, sizeof *r->rank_grads);
    rt_optim_share(r->opt, mine, params, state_of(r, r->rank));
}

/* Between two barriers, any number of ranks' gradients: chunks of this many elements are
 * added up in registers and stored, so that a rank's own gradient, one of the addends, is
 * read before its sum replaces it. */
#define SUM_CHUNK 256

/* weighted_sum_T: dst[e] = w_0 g_0[e] + w_1 g_1[e] + .. in rank order, each product rounded
 * to T first: the numbers and the order of the sum by messages (move_elems, then
 * rt_rank_sum_all). A chunk's sums stay in acc until every rank's term is in; the inner loop,
 * inlined where its count is the constant SUM_CHUNK, GCC vectorises at -O2. */
#define WEIGHTED_SUM(T)                                                                            \
    static inline void weighted_chunk_##T(T *restrict acc, const T *restrict g, T w, int64_t n,    \
                                          int add) {                                               \
        if (add)                                                                                   \
            for (int64_t e = 0; e < n; e++) acc[e] += g[e] * w;                                    \
        else                                                                                       \
            for (int64_t e = 0; e < n; e++) acc[e] = g[e] * w;                                     \
    }                                                                                              \
    static void weighted_sum_##T(void *dst, const char *const *from, const double *weight,         \
                                 int ranks, int64_t n) {                                           \
        T *out = dst;                                                                              \
        for (int64_t at = 0; at < n; at += SUM_CHUNK) {                                            \
            int64_t len = n - at < SUM_CHUNK ? n - at : SUM_CHUNK;                                 \
            T acc[SUM_CHUNK];                                                                      \
            for (int k = 0; k < ranks; k++) {                                                      \
                const T *g = (const T *)(const void *)from[k] + at;                                \
                if (len == SUM_CHUNK)                                                              \
                    weighted_chunk_##T(acc, g, (T)weight[k], SUM_CHUNK, k > 0);                    \
                else                                                                               \
                    weighted_chunk_##T(acc, g, (T)weight[k], len, k > 0);                          \
            }                                                                                      \
            memcpy(out + at, acc, (size_t)len * sizeof(T));                                        \
        }                                                                                          \
    }
WEIGHTED_SUM(float)
WEIGHTED_SUM(double)

/* Calls visit(r, at, n, rank) for each run of the update's elements lo .. hi (rt_optim_elems:
 * the params' gradients, in param order): n elements from byte `at` of a fixed arena, the same
 * place in every rank's, of the gradients or (`params`) of the params they update. */
typedef void elem_run_fn(run *r, size_t at, int64_t n, int rank);
static void each_run(run *r, int64_t lo, int64_t hi, int params, elem_run_fn *visit, int rank) {
    const nnrt_model *m = r->m;
    size_t esize = rt_elem_size(m->f64);
    int64_t start = 0;
    for (int32_t i = 0; i < m->n_params && start < hi; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->grad_offset < 0) continue;
        int64_t a = lo > start ? lo : start, end = start + t->numel, b = hi < end ? hi : end;
        int64_t offset = params ? t->offset : t->grad_offset;
        if (a < b) visit(r, (size_t)(offset + a - start) * esize, b - a, rank);
        start = end;
    }
}
static void each_grad_run(run *r, int64_t lo, int64_t hi, elem_run_fn *visit, int rank) {
    each_run(r, lo, hi, 0, visit, rank);
}

/* n elements at byte `at`: every rank's gradient, weighted by r->rank_weights, summed into
 * this rank's own. */
static void sum_run(run *r, size_t at, int64_t n, int unused) {
    (void)unused;
    for (int k = 0; k < r->ranks; k++) r->rank_grads[k] = fixed_of(r, k) + at;
    if (r->m->f64)
        weighted_sum_double((char *)r->fixed + at, r->rank_grads, r->rank_weights, r->ranks, n);
    else
        weighted_sum_float((char *)r->fixed + at, r->rank_grads, r->rank_weights, r->ranks, n);
}

/* n params at byte `at` of rank 0's arena (the steps' only copy), out of every cache. */
static void evict_param_run(run *r, size_t at, int64_t n, int unused) {
    (void)unused;
    rt_evict_lines(fixed_of(r, 0) + at, (size_t)n * rt_elem_size(r->m->f64));
}

/* The params of the other ranks' slices out of the caches, after this rank's grad() has read
 * them for the last time in the step: their owners update them after the barrier, and a store
 * to a line that another core holds must first take that copy away. Rank j's update of its
 * slice then finds no copies elsewhere. On a Zen 5 whose cores hand lines over slowly (a round
 * trip of 650 ns), W2 on 2 ranks went from 51k to 57k samples/s (bench/README.md, "The
 * ranks' params out of the caches"); where handing lines over is cheap, the flush and the
 * update's reads from memory may cost more than they save, so the ranks measure it
 * (r->evicts). Taking lines out changes no value. */
static void evict_other_params(run *r) {
    for (int k = 0; k < r->ranks; k++)
        if (k != r->rank)
            each_run(r, slice_first(r, k), slice_first(r, k + 1), 1, evict_param_run, 0);
}

/* Elements lo .. hi of the update's, summed over the ranks' gradients into this rank's own. */
static void sum_slice(run *r, int64_t lo, int64_t hi) {
    each_grad_run(r, lo, hi, sum_run, 0);
}

/* n elements at byte `at`, copied from rank k's arena into this rank's. */
static void copy_run(run *r, size_t at, int64_t n, int k) {
    memcpy((char *)r->fixed + at, fixed_of(r, k) + at, (size_t)n * rt_elem_size(r->m->f64));
}

/* Every rank's slice of the summed gradients into this rank's own, for --log-grad-norms:
 * between barriers, before any rank penalises or clips its slice. */
static void gather_gradients(run *r) {
    rt_rank_window_barrier(r->window);
    for (int k = 0; k < r->ranks; k++)
        if (k != r->rank) each_grad_run(r, slice_first(r, k), slice_first(r, k + 1), copy_run, k);
    rt_rank_window_barrier(r->window);
}

/* Copies rank 0's params (the steps' only copy) or states into this rank's own arena. */
static void copy_from_rank0(run *r, const nnrt_tensor *tensors, int32_t n) {
    size_t esize = rt_elem_size(r->m->f64);
    for (int32_t i = 0; i < n; i++)
        memcpy((char *)r->fixed + (size_t)tensors[i].offset * esize,
               fixed_of(r, 0) + (size_t)tensors[i].offset * esize,
               (size_t)tensors[i].numel * esize);
}

/* Rank 0, before it writes a checkpoint: the optimizer's state of every slice from the rank
 * that updates it. The others wait for rank 0 at the next step's first barrier, so their
 * state holds still meanwhile. */
static void gather_optimizer_state(run *r) {
    for (int k = 1; r->window && k < r->ranks; k++)
        rt_optim_copy_state_part(r->opt, state_of(r, k), slice_first(r, k), slice_first(r, k + 1));
}

/* The first fault of the ranks' slices in rank order (the lowest param), or -1. */
static int32_t first_bad(const run *r, int gradient) {
    for (int k = 0; k < r->ranks; k++) {
        const rank_note *note = note_of(r, k);
        int32_t bad = gradient ? note->bad_gradient : note->bad_value;
        if (bad >= 0) return bad;
    }
    return -1;
}

/* A slice goes through the sum, the penalties and the update a chunk of this many elements
 * at a time, each step on a chunk still in the cache from the one before. */
#define UPDATE_CHUNK 8192

/* Chunk by chunk of the elements lo .. hi: the ranks' gradients added up (when `sum`), the
 * penalties, whose sums of squares are added to *sum_sq, and the update unclipped (when
 * `update`), whose first param not finite goes to *bad_value. The first param whose gradient
 * is not finite, or -1 (the update finds it). Both ways of adding up go through the same
 * chunks, so clipping's sum of squares has the same bits. */
static int32_t through_chunks(run *r, int64_t lo, int64_t hi, int sum, int update, double *sum_sq,
                              int32_t *bad_value) {
    for (int64_t c = lo; c < hi; c += UPDATE_CHUNK) {
        int64_t end = hi - c < UPDATE_CHUNK ? hi : c + UPDATE_CHUNK;
        if (sum) sum_slice(r, c, end);
        *sum_sq += rt_optim_prepare_part(r->opt, c, end);
        int32_t bad = update ? rt_optim_update_part(r->opt, c, end, 1.0, bad_value) : -1;
        if (bad >= 0) return bad;
    }
    return -1;
}

/* The shared step after its first barrier: the step's extras summed, rank 0's states
 * copied, this rank's slice summed, penalised, clipped and updated, and the last barrier.
 * Returns the param at fault, or -1. */
static int32_t update_my_slice(run *r, int64_t count, double lr, int last, double *extras,
                               enum rt_fault *kind) {
    for (int k = 0; k < r->ranks; k++) r->rank_weights[k] = rank_weight(r, k, count);
    for (int e = 0; e < N_EXTRAS; e++) {
        extras[e] = note_of(r, 0)->extras[e];
        for (int k = 1; k < r->ranks; k++) extras[e] += note_of(r, k)->extras[e];
    }
    if (r->rank > 0) copy_from_rank0(r, r->m->states, r->m->n_states);
    int64_t lo = slice_first(r, r->rank), hi = slice_first(r, r->rank + 1);
    int gather = r->grad_norms.now && last, clips = rt_optim_clips(r->opt);
    if (gather) { /* --log-grad-norms: the whole summed gradient, before any penalty */
        sum_slice(r, lo, hi);
        gather_gradients(r);
        grad_norms_of(r);
    }
    rank_note *note = note_of(r, r->rank);
    rt_optim_begin(r->opt, lr, r->step);
    note->sum_sq = 0;
    note->bad_value = -1;
    note->bad_gradient =
        through_chunks(r, lo, hi, !gather, !clips, &note->sum_sq, &note->bad_value);
    if (clips) { /* the norm of the whole gradient first */
        rt_rank_window_barrier(r->window);
        double sum_sq = 0;
        for (int k = 0; k < r->ranks; k++) sum_sq += note_of(r, k)->sum_sq;
        note->bad_gradient = rt_optim_update_part(
            r->opt, lo, hi, rt_optim_clip_scale(r->opt, sum_sq), &note->bad_value);
    }
    /* A rank that updated its slice while another's gradient failed makes no difference:
     * the run stops on it after the barrier, and a failed step's weights are never saved. */
    rt_rank_window_barrier(r->window);
    *kind = RT_FAULT_GRADIENT;
    int32_t bad = first_bad(r, 1);
    if (bad >= 0) return bad;
    *kind = RT_FAULT_VALUE;
    bad = first_bad(r, 0);
    return bad >= 0 ? bad : rt_optim_nonfinite_without_gradient(r->opt);
}

/* ---- a step on each rank ---- */

/* What every rank must agree on before the first step, else they would not split the same
 * batches: the counts of rows and steps, the batch, the model's arena and where a resumed
 * run starts. */
static void check_ranks_agree(const run *r) {
    enum { ROWS, BATCH, EPOCHS, STEPS, SEED, FIXED, EPOCH, POS, STEP, BUCKET, N_FACTS };
    static const char *const names[N_FACTS] = {"training rows",
                                               "batch",
                                               "epochs",
                                               "step limit",
                                               "seed",
                                               "fixed arena elements",
                                               "epochs done (--resume)",
                                               "rows done in the epoch (--resume)",
                                               "steps done (--resume)",
                                               "bytes a bucket of the sum (NNRT_MPI_BUCKET)"};
    int64_t mine[N_FACTS] = {
        r->data->n_train,  r->batch, r->epochs, r->o->steps, r->o->seed,
        r->m->fixed_elems, r->epoch, r->pos,    r->step,     rt_mpi_bucket_bytes()};
    int64_t *all = rt_alloc_array((size_t)N_FACTS * (size_t)r->ranks, sizeof *all);
    rt_ranks_gather(mine, N_FACTS, all);
    for (int k = 1; k < r->ranks; k++)
        for (int f = 0; f < N_FACTS; f++)
            if (all[k * N_FACTS + f] != all[f])
                rt_fatal("rank %d has %s %lld, rank 0 %lld: every rank must run the same "
                         "program with the same data and options",
                         k, names[f], (long long)all[k * N_FACTS + f], (long long)all[f]);
    rt_free(all);
    /* rank 0's params, resumed or not, are stored before any rank's first grad() reads them */
    if (r->window) rt_rank_window_barrier(r->window);
}

static void start_ranks(run *r) {
    if (!has_inputs(r))
        rt_usage_error("model '%s' has no inputs, so no batch to share among %d ranks: run it "
                       "without mpirun",
                       r->m->name, r->ranks);
    if (r->o->workers > 1 || r->o->hogwild > 0)
        rt_usage_error("%s under mpirun: each of the %d ranks trains on one thread; start more "
                       "ranks instead (mpirun -np K)",
                       r->o->workers > 1 ? "--workers" : "--hogwild", r->ranks);
}

/* grad() on rank r->rank's share of rows[0..count); its metrics. By messages, grad() hands
 * each bucket of gradients to the sum as soon as it has finished it (grad_sum.h). */
static rt_metrics grad_of_share(run *r, const int64_t *rows, int64_t count) {
    const nnrt_model *m = r->m;
    if (r->trace && r->step == 0) rt_trace_row(r->trace, 0, r->fixed, batch_loss(r, rows, count));
    rt_share share = rt_worker_share(count, r->ranks, r->rank);
    int64_t lo = share.first, hi = share.first + share.rows;
    rt_metrics mine = {0};
    r->ctx.noise_seed = rt_rng_next(&r->noise_rng);
    void *listener = r->grad_sum
                         ? rt_grad_sum_begin(r->grad_sum, r->fixed, rank_weight(r, r->rank, count),
                                             r->rank == 0 ? 1.0 : 0.0)
                         : NULL;
    if (hi > lo) { /* a batch smaller than the ranks leaves some without rows */
        rt_fill_batch(m, &r->ctx, &r->data->train, rows + lo, 0, hi - lo, 1);
        rt_share next = rt_worker_share(next_batch_rows(r, rows, count), r->ranks, r->rank);
        rt_prefetch_batch_in_step(m, &r->data->train, rows + count + next.first, next.rows);
        r->ctx.first_row = lo;
        rt_ids_first_row(lo);
        r->ctx.training = r->rank == 0 ? NNRT_TRAINING_STEP : NNRT_TRAINING;
        r->ctx.on_grads = listener;
        m->grad(&r->ctx);
        rt_lines_ahead_rest();
        r->ctx.on_grads = NULL;
        r->ctx.training = NNRT_INFERENCE;
        r->ctx.first_row = 0;
        rt_ids_first_row(0);
        rt_add_batch_metrics(m, &r->ctx, &r->data->train, rows + lo, 0, &mine);
    }
    return mine;
}

/* The update by messages: every rank updates every element, clipped by the sums of squares
 * of the slices' chunks in rank order, as the ranks in shared memory add them up. */
static int32_t update_by_slices(run *r, double lr, enum rt_fault *kind) {
    rt_optim_begin(r->opt, lr, r->step);
    double sum_sq = 0;
    int32_t bad_value = -1;
    for (int k = 0; k < r->ranks; k++) { /* each slice's sum, then theirs in rank order */
        double part = 0;
        through_chunks(r, slice_first(r, k), slice_first(r, k + 1), 0, 0, &part, &bad_value);
        sum_sq += part;
    }
    int32_t bad = rt_optim_update_part(r->opt, 0, slice_first(r, r->ranks),
                                       rt_optim_clip_scale(r->opt, sum_sq), &bad_value);
    *kind = bad >= 0 ? RT_FAULT_GRADIENT : RT_FAULT_VALUE;
    if (bad >= 0) return bad;
    return bad_value >= 0 ? bad_value : rt_optim_nonfinite_without_gradient(r->opt);
}

/* The gradients, states and extras through the sum by messages, and the update. */
static int32_t sum_and_update(run *r, double lr, int last, double *extras, enum rt_fault *kind) {
    double *sum = rt_grad_sum_extras(r->grad_sum);
    memcpy(sum, extras, N_EXTRAS * sizeof *extras);
    rt_grad_sum_finish(r->grad_sum);
    memcpy(extras, sum, N_EXTRAS * sizeof *extras);
    if (r->grad_norms.now && last) grad_norms_of(r);
    return update_by_slices(r, lr, kind);
}

/* train_step on rank r->rank's share of rows[0..count), then the update every rank makes. */
static int rank_step(run *r, const int64_t *rows, int64_t count, double lr) {
    const nnrt_model *m = r->m;
    /* In shared memory the ranks time their first steps with and without the eviction. Every
     * rank takes the same way at the same step, and the barriers make their steps last about
     * alike, so each keeps the way that the others' timings favour too. */
    int timed = r->window && rt_two_ways_timing(&r->evicts);
    double start = timed ? rt_now() : 0;
    rt_metrics mine = grad_of_share(r, rows, count);
    int last = last_step_of_epoch(r, count);
    /* the weights before the update: before any rank's update, which follows the barrier */
    if (r->update_ratios.now && last) copy_weights(r->m, r->fixed, r->before_update, 1);
    double extras[N_EXTRAS] = {mine.loss_sum, (double)mine.correct, interrupted ? 1 : 0};
    r->step++;
    enum rt_fault kind;
    int32_t bad;
    if (r->window) {
        memcpy(note_of(r, r->rank)->extras, extras, sizeof extras);
        if (rt_two_ways_next(&r->evicts)) evict_other_params(r);
        rt_rank_window_barrier(r->window); /* every gradient, state and note is stored */
        bad = update_my_slice(r, count, lr, last, extras, &kind);
        if (timed) rt_two_ways_took(&r->evicts, rt_now() - start);
        if (last && r->rank > 0) copy_from_rank0(r, m->params, m->n_params);
        /* rank 0 changes its params after the last step (early stopping's best) only once
         * every rank has its copy */
        if (last) rt_rank_window_barrier(r->window);
    } else {
        bad = sum_and_update(r, lr, last, extras, &kind);
    }
    r->agreed_stop = extras[EXTRA_STOP] > 0;
    if (!step_ok(r, extras[EXTRA_LOSS] / (double)count, bad, kind)) return 0;
    if (r->update_ratios.now && last) update_ratios_of(r);
    rt_metrics all = {extras[EXTRA_LOSS], (int64_t)extras[EXTRA_CORRECT], count,
                      count * rt_class_layout_of(m).steps};
    rt_add_metrics(&r->partial, all);
    if (r->trace) rt_trace_row(r->trace, r->step, r->fixed, batch_loss(r, rows, count));
    return 1;
}

/* FNV-1a of the bytes of the params, then the states: the same on every rank, or a rank has
 * drifted (a kernel that rounds differently on another machine's CPU). */
static int64_t weights_checksum(const run *r) {
    uint64_t h = 0xcbf29ce484222325u;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        const unsigned char *p = rt_elem_cptr(r->fixed, t->offset, r->m->f64);
        size_t bytes = (size_t)t->numel * rt_elem_size(r->m->f64);
        for (size_t b = 0; b < bytes; b++) h = (h ^ p[b]) * 0x100000001b3u;
    }
    return (int64_t)h;
}

/* After the last step: every rank must hold rank 0's weights, which rank 0 saves. Rank 0
 * says so, with the checksum of each rank's. */
static void check_ranks_hold_same_weights(const run *r) {
    if (r->ranks == 1) return;
    int64_t mine = weights_checksum(r);
    int64_t *all = rt_alloc_array((size_t)r->ranks, sizeof *all);
    rt_ranks_gather(&mine, 1, all);
    for (int k = 1; k < r->ranks; k++)
        if (all[k] != all[0])
            rt_fatal("rank %d holds other weights than rank 0 after training (checksum "
                     "%016llx, rank 0 %016llx)",
                     k, (unsigned long long)all[k], (unsigned long long)all[0]);
    if (r->rank == 0 && !r->o->quiet) {
        fprintf(stderr, "%d ranks, the same weights on each: checksum", r->ranks);
        for (int k = 0; k < r->ranks; k++) fprintf(stderr, " %016llx", (unsigned long long)all[k]);
        if (r->grad_sum)
            fprintf(stderr, "; summed by messages in %d bucket%s a step, %d sent while grad() ran",
                    rt_grad_sum_buckets(r->grad_sum),
                    rt_grad_sum_buckets(r->grad_sum) > 1 ? "s" : "",
                    rt_grad_sum_early(r->grad_sum));
        fputc('\n', stderr);
    }
    rt_free(all);
}

/* Rank 0 writes the log, the progress, the trace, the plot, the weights and the
 * checkpoints; the other ranks' options lose them. */
static rt_options only_rank0_writes(const rt_options *o) {
    rt_options mine = *o;
    if (rt_rank() == 0) return mine;
    mine.quiet = 1;
    mine.log = mine.plot = mine.save = mine.trace = NULL;
    mine.checkpoint_every = 0;
    return mine;
}

/* More threads than CPUs is allowed (a test may want it) but slow: a team's step waits at
 * each phase for the threads the system is not running, and HOGWILD!'s threads take turns.
 * W1 on two CPUs: 415k samples/s with --workers 2, 154k with --workers 8. */
void rt_warn_threads_beyond_cpus(const rt_options *o) {
    int64_t threads = o->hogwild > 0 ? o->hogwild : o->workers;
    int cpus = rt_usable_cpus();
    if (rt_rank() != 0 || threads < 2 || cpus < 1 || threads <= cpus) return;
    const char *option = o->hogwild > 0 ? "--hogwild" : "--workers";
    fprintf(stderr,
            "%s: warning: %s %lld starts more threads than the %d CPU%s this process may use: "
            "they take turns on %s, which is usually slower than %s %d\n",
            rt_program_name(), option, (long long)threads, cpus, cpus == 1 ? "" : "s",
            cpus == 1 ? "it" : "them", option, cpus);
}

/* Epochs until the last, the step limit, early stopping or Ctrl-C. A run resumed from a
 * checkpoint starts within its epoch at pos. */
static void run_epochs(run *r) {
    const rt_train_data *d = r->data;
    if (r->progress) r->epoch_start = rt_progress_now(r->progress);
    record_path(r); /* the start: the first point of the descent path */
    int lr_constant = rt_schedule_constant(r->o);
    while (r->epoch < r->epochs && r->stop == RUNNING) {
        if (r->pos == 0) {
            if (r->o->shuffle && has_inputs(r) && !whole_set_batch(r))
                rt_rng_shuffle(&r->shuffle_rng, r->order, d->n_train);
            memset(&r->partial, 0, sizeof r->partial);
        }
        double lr = lr_constant ? r->o->lr : rt_schedule_lr(r->o, r->epoch + 1, r->epochs);
        if (r->o->hogwild > 0 && !hogwild_epoch(r, lr)) return;
        while (r->pos < d->n_train) {
            if (has_inputs(r) && r->o->steps > 0 && r->step == r->o->steps) break;
            int64_t count = d->n_train - r->pos < r->batch ? d->n_train - r->pos : r->batch;
            if (!train_step(r, r->order + r->pos, count, lr)) return;
            r->pos += count;
            if (!r->progress) continue;
            rt_progress_tick(r->progress, r->epoch + 1, r->epochs, r->pos, d->n_train, r->partial);
            if (stop_asked(r) && r->pos < d->n_train) {
                rt_workers_settle(r->workers);
                stop_interrupted(r);
            }
        }
        rt_workers_settle(r->workers); /* the params in rows for the epoch's end */
        end_epoch(r, lr);
        if (r->progress && stop_asked(r)) stop_interrupted(r);
    }
    if (r->stop == RUNNING) r->stop = FINISHED;
}

/* With early stopping the run ends with the best epoch's weights. */
static void restore_best(run *r) {
    if (!r->o->early_stopping || r->best_epoch == 0) return;
    copy_weights(r->m, r->fixed, r->best_params, 0);
    if (!r->progress || r->o->quiet) return;
    const char *what = strcmp(r->o->monitor, "accuracy") == 0 ? "accuracy" : "loss";
    if (r->stop == STOPPED_EARLY)
        fprintf(stderr, "early stopping: validation %s has not improved for %lld epochs\n", what,
                (long long)r->bad_epochs);
    fprintf(stderr, "restored the weights of epoch %lld (validation %s %.6g)\n",
            (long long)r->best_epoch, what, r->best);
}

/* ---- checkpoints ----
 *
 * A checkpoint is a weights file (rt_st_weights_writer) plus the fields of the table below,
 * which saving and resuming both walk. Resuming checks every value against what a run with
 * these options and this data can have written, before any of it is used: an edited,
 * corrupted or foreign checkpoint is an error naming the key ("PATH: error: metadata
 * 'nnrt.epoch': ..."), never a run that overflows, allocates without bound or trains on
 * garbage. */

#define META_MAX 160

static void meta_int(rt_st_writer *w, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    rt_st_meta(w, key, buf);
}

/* Hexadecimal floating point: the exact value, read back by strtod. */
static void meta_real(rt_st_writer *w, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v);
    rt_st_meta(w, key, buf);
}

static void meta_rng(rt_st_writer *w, const char *key, const rt_rng *g) {
    char buf[META_MAX];
    snprintf(buf, sizeof buf, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %d %a",
             g->s[0], g->s[1], g->s[2], g->s[3], g->has_spare, g->spare);
    rt_st_meta(w, key, buf);
}

static _Noreturn void bad_meta(const char *path, const char *key, const char *fmt, ...)
    RT_FORMAT(3, 4);
static void bad_meta(const char *path, const char *key, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rt_path_error(path, "metadata '%s': %s", key, why);
}

static const char *need_meta(const rt_st_file *f, const char *path, const char *key) {
    const char *v = rt_st_meta_get(f, key);
    if (!v)
        rt_path_error(path,
                      "not a checkpoint of this runtime: no '%s' in its metadata (a weights "
                      "file starts training with --init-weights)",
                      key);
    return v;
}

/* A metadata value as message text. */
typedef struct shown_value {
    char s[80];
} shown_value;

static shown_value show_value(const char *v) {
    shown_value out;
    rt_printable(out.s, sizeof out.s, v, strlen(v));
    return out;
}

/* A whole number as meta_int writes it: an optional '-', then digits, and nothing else. */
static int64_t parse_int(const char *path, const char *key, const char *v) {
    const char *digits = v + (*v == '-');
    size_t n = strspn(digits, "0123456789");
    errno = 0;
    long long x = n > 0 ? strtoll(v, NULL, 10) : 0;
    if (n == 0 || digits[n] != '\0' || errno == ERANGE)
        bad_meta(path, key, "'%s' is not a whole number", show_value(v).s);
    return x;
}

/* A real number as meta_real writes it (%a, or inf, -inf, nan): all of the text. */
static double parse_real(const char *path, const char *key, const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end != '\0' || *v == ' ' || *v == '\t' || *v == '\n')
        bad_meta(path, key, "'%s' is not a number", show_value(v).s);
    return x;
}

/* "W W W W S X" as meta_rng writes it: four words of 1 to 16 hex digits, the spare flag 0
 * or 1, the spare normal (finite); a state of all zeros is the one xoshiro never leaves. */
static void parse_rng(const char *path, const char *key, const char *v, rt_rng *g) {
    const char *p = v;
    const char *bad = "is not a generator state (four hex words, 0 or 1, a number)";
    uint64_t any = 0;
    for (int w = 0; w < 4; w++) {
        size_t n = strspn(p, "0123456789abcdefABCDEF");
        if (n == 0 || n > 16 || p[n] != ' ') bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
        g->s[w] = strtoull(p, NULL, 16);
        any |= g->s[w];
        p += n + 1;
    }
    if ((p[0] != '0' && p[0] != '1') || p[1] != ' ')
        bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
    g->has_spare = p[0] == '1';
    char *end;
    g->spare = strtod(p + 2, &end);
    if (end == p + 2 || *end != '\0' || p[2] == ' ' || !isfinite(g->spare))
        bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
    if (any == 0) bad_meta(path, key, "an all-zero state, which the generator never has");
}

static void check_range(const char *path, const char *key, int64_t v, int64_t lo, int64_t hi,
                        const char *why) {
    if (v < lo || v > hi)
        bad_meta(path, key, "%lld is out of range %lld..%lld (%s)", (long long)v, (long long)lo,
                 (long long)hi, why);
}

/* a * b + c, or INT64_MAX when that does not fit. */
static int64_t bound_mul_add(int64_t a, int64_t b, int64_t c) {
    int64_t v;
    if (__builtin_mul_overflow(a, b, &v) || __builtin_add_overflow(v, c, &v)) return INT64_MAX;
    return v;
}

/* ---- what resuming accepts of each metadata field: the value read, before it is stored;
 * the fields above it in the table are in the run already ---- */

typedef union field_value {
    int64_t i;        /* INT */
    double x;         /* REAL */
    const char *text; /* TEXT */
} field_value;

static void check_kind(const run *r, const char *path, const char *key, field_value v) {
    (void)r, (void)key;
    if (strcmp(v.text, "checkpoint") != 0)
        rt_path_error(path, "not a checkpoint (its kind is '%s')", show_value(v.text).s);
}

/* A checkpoint's counts of rows beyond this run's training rows, or its order naming other
 * rows, mostly mean a run on other rows: the hint under the error says what chooses them. */
static void hint_same_rows(const run *r) {
    if (has_inputs(r))
        rt_hint("a run resumes on the training rows it was saved with: give it the same data, "
                "--validation (or --validation-data) and --seed");
}

/* A range check whose failure may be the rows' (hint_same_rows). */
static void check_rows_range(const run *r, const char *path, const char *key, int64_t v, int64_t lo,
                             int64_t hi, const char *why) {
    if (v >= lo && v <= hi) return;
    hint_same_rows(r);
    check_range(path, key, v, lo, hi, why);
}

static void check_epoch(const run *r, const char *path, const char *key, field_value v) {
    const char *unit = has_inputs(r) ? "epoch" : "step";
    if (v.i > r->epochs) /* most often a run told to train fewer than are done */
        rt_hint("--%ss counts the %ss in all, those done included: give --%ss %lld or more to "
                "go on from this checkpoint",
                unit, unit, unit, (long long)v.i);
    char why[160];
    snprintf(why, sizeof why, "this run trains %lld %s%s", (long long)r->epochs, unit,
             r->epochs == 1 ? "" : "s");
    check_range(path, key, v.i, 0, r->epochs, why);
}

static void check_pos(const run *r, const char *path, const char *key, field_value v) {
    check_rows_range(r, path, key, v.i, 0, has_inputs(r) ? r->data->n_train - 1 : 0,
                     "rows of the current epoch done, of the training rows");
}

/* At least one step per epoch, and at most one per row. */
static void check_step(const run *r, const char *path, const char *key, field_value v) {
    int64_t most = has_inputs(r) ? bound_mul_add(r->epoch, r->data->n_train, r->pos) : r->epoch;
    if (has_inputs(r) && r->o->steps > 0 && r->o->steps < most) most = r->o->steps;
    check_rows_range(r, path, key, v.i, r->epoch + (r->pos > 0), most,
                     "one step or more per epoch, one row or more per step, within --steps");
}

static void check_samples(const run *r, const char *path, const char *key, field_value v) {
    if (r->pos > 0)
        check_rows_range(r, path, key, v.i, r->pos, r->pos, "the rows of the current epoch done");
    else
        check_rows_range(r, path, key, v.i, 0, r->data->n_train, "the rows of the last epoch");
}

static void check_correct(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->partial.samples * rt_class_layout_of(r->m).steps,
                "right predictions among 'nnrt.samples'");
}

static void check_finite(const run *r, const char *path, const char *key, field_value v) {
    (void)r;
    if (!isfinite(v.x)) bad_meta(path, key, "%g is not finite", v.x);
}

static void check_best_epoch(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->epoch, "an epoch done");
}

static void check_bad_epochs(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->epoch - r->best_epoch, "epochs since 'nnrt.best_epoch'");
}

static void check_best(const run *r, const char *path, const char *key, field_value v) {
    if (isnan(v.x) || (r->best_epoch > 0 && !isfinite(v.x)))
        bad_meta(path, key, "%g is not %s", v.x,
                 r->best_epoch > 0 ? "a finite number" : "a number");
}

static void check_optimizer(const run *r, const char *path, const char *key, field_value v) {
    (void)key;
    if (strcmp(v.text, r->o->optimizer) != 0)
        rt_usage_error("%s was trained with --optimizer %s; resume it with the same optimizer",
                       path, show_value(v.text).s);
}

/* Every update step is one optimizer step (Adam's t). */
static void check_optimizer_steps(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, r->step, r->step, "it counts what 'nnrt.step' does");
}

static const char *kind_text(const run *r) {
    (void)r;
    return "checkpoint";
}

static const char *optimizer_text(const run *r) {
    return r->o->optimizer;
}

/* ---- the tensor fields: each saved and read (and checked) by its own pair ---- */

static void read_params(const rt_st_file *f, const char *path, run *r) {
    (void)path;
    rt_st_read_params(f, r->m, r->fixed, "");
}

/* text.vocab: metadata the weights writer saves for a text model. The run has encoded its
 * text with the checkpoint's vocabulary already (load_text_train_data): it must be there
 * exactly when the model reads text, and be the run's. */
static void read_vocab(const rt_st_file *f, const char *path, run *r) {
    const char *saved = rt_st_meta_get(f, RT_VOCAB_KEY);
    const rt_vocab *vocab = &r->data->stats.vocab;
    if (!rt_is_text_model(r->m)) {
        if (saved)
            rt_path_error(path, "metadata '%s': a text vocabulary, and model '%s' reads no text",
                          RT_VOCAB_KEY, r->m->name);
        return;
    }
    if (!saved)
        rt_path_error(path, "no metadata '%s': this checkpoint was not trained on text",
                      RT_VOCAB_KEY);
    char *own = rt_vocab_to_utf8(vocab);
    if (strcmp(own, saved) != 0)
        rt_path_error(path, "metadata '%s': not the vocabulary the text was encoded with",
                      RT_VOCAB_KEY);
    rt_free(own);
}

/* standardize.mean and .std, saved by the weights writer when the run standardised its
 * inputs: the run that resumes must too (it computes the same statistics from the same
 * training rows), else its weights would go on learning from other values than they began
 * with. */
static void read_standardize(const rt_st_file *f, const char *path, run *r) {
    int rank;
    uint64_t dims[RT_ST_MAX_RANK];
    int saved = rt_st_shape(f, "standardize.mean", &rank, dims);
    if (saved != (r->o->standardize != 0))
        rt_usage_error("%s was trained with --standardize %s; resume it with the same", path,
                       saved ? "on" : "off");
}

/* STATE: the running statistics, saved by the weights writer; resuming needs every one. */
static void read_states(const rt_st_file *f, const char *path, run *r) {
    (void)path;
    rt_st_read_states(f, r->m, r->fixed, 1);
}

/* optimizer.SLOT.PARAM: each state slot of each param that has it (optimizers.def) */
static void slot_name(const run *r, int s, int32_t i, char *buf, size_t size) {
    snprintf(buf, size, "optimizer.%s.%s", rt_optim_slot_name(r->opt, s), r->m->params[i].name);
}

static void save_slots(rt_st_writer *w, const run *r) {
    const nnrt_model *m = r->m;
    for (int s = 0; s < rt_optim_slots(r->opt); s++)
        for (int32_t i = 0; i < m->n_params; i++) {
            const void *state = rt_optim_state(r->opt, s, i);
            if (!state) continue;
            char name[512];
            slot_name(r, s, i, name, sizeof name);
            rt_st_add(w, name, m->f64 ? RT_ST_F64 : RT_ST_F32, m->params[i].rank, m->params[i].dims,
                      state);
        }
}

static void read_slots(const rt_st_file *f, const char *path, run *r) {
    const nnrt_model *m = r->m;
    for (int s = 0; s < rt_optim_slots(r->opt); s++)
        for (int32_t i = 0; i < m->n_params; i++) {
            void *state = rt_optim_state(r->opt, s, i);
            if (!state) continue;
            char name[512];
            slot_name(r, s, i, name, sizeof name);
            if (!rt_st_read(f, name, m->f64 ? RT_ST_F64 : RT_ST_F32, m->params[i].rank,
                            m->params[i].dims, state))
                rt_path_error(path,
                              "missing tensor '%s' (was the checkpoint saved with other "
                              "optimizer options?)",
                              name);
            rt_st_check_values(f, name, state, m->params[i].numel, m->f64,
                               rt_optim_slot_nonnegative(r->opt, s));
        }
}

static void save_order(rt_st_writer *w, const run *r) {
    rt_st_add(w, "train.order", RT_ST_I64, 1, &r->data->n_train, r->order);
}

/* train.order must be an order of exactly this run's training rows: each once. */
static void read_order(const rt_st_file *f, const char *path, run *r) {
    const rt_train_data *d = r->data;
    int64_t n_train = d->n_train, rows = d->train.rows;
    int rank;
    uint64_t dims[RT_ST_MAX_RANK];
    if (!rt_st_shape(f, "train.order", &rank, dims))
        rt_path_error(path, "missing tensor 'train.order'");
    if (rank != 1 || dims[0] != (uint64_t)n_train) {
        hint_same_rows(r);
        rt_path_error(path,
                      "tensor 'train.order' is not the order of this run's %lld training rows",
                      (long long)n_train);
    }
    rt_st_read(f, "train.order", RT_ST_I64, 1, &n_train, r->order);
    unsigned char *mark = rt_alloc((size_t)rows + 1); /* 1: a training row, 2: seen */
    for (int64_t i = 0; i < n_train; i++) mark[d->train_rows[i]] = 1;
    for (int64_t i = 0; i < n_train; i++) {
        int64_t row = r->order[i];
        const char *why = row < 0 || row >= rows ? "outside the data"
                          : mark[row] == 0       ? "a validation row"
                          : mark[row] == 2       ? "a second time"
                                                 : NULL;
        if (why) {
            hint_same_rows(r);
            rt_path_error(path,
                          "tensor 'train.order' is not an order of the training rows: element "
                          "%lld names row %lld, %s",
                          (long long)i, (long long)row, why);
        }
        mark[row] = 2;
    }
    rt_free(mark);
}

static void save_history(rt_st_writer *w, const run *r) {
    int64_t dims[2] = {r->history_rows, RT_HIST_COLS};
    if (r->history_rows > 0) rt_st_add(w, "train.history", RT_ST_F64, 2, dims, r->history);
}

/* train.history: rows of RT_HIST_COLS, as many as the run can have kept (at most one per
 * epoch done, at most RT_HIST_MAX_ROWS, none before the first epoch), their epochs whole,
 * increasing and the last one the checkpoint's epoch; lr finite and >= 0, the metrics finite
 * or nan (not measured). */
static void read_history(const rt_st_file *f, const char *path, run *r) {
    if (r->epoch == 0) return;
    int rank;
    uint64_t shape[RT_ST_MAX_RANK];
    if (!rt_st_shape(f, "train.history", &rank, shape))
        rt_path_error(path, "missing tensor 'train.history'");
    uint64_t most = r->epoch < RT_HIST_MAX_ROWS ? (uint64_t)r->epoch : RT_HIST_MAX_ROWS;
    if (rank != 2 || shape[1] != RT_HIST_COLS || shape[0] < 1 || shape[0] > most)
        rt_path_error(path, "tensor 'train.history' must have 1 to %llu rows of %d (epoch %lld)",
                      (unsigned long long)most, RT_HIST_COLS, (long long)r->epoch);
    int64_t dims[2] = {(int64_t)shape[0], RT_HIST_COLS};
    rt_st_read(f, "train.history", RT_ST_F64, 2, dims, r->history);
    r->history_rows = dims[0];
    double before = 0;
    for (int64_t i = 0; i < dims[0] * RT_HIST_COLS; i++) {
        double v = r->history[i];
        int c = (int)(i % RT_HIST_COLS);
        const char *bad = NULL;
        if (c == RT_HIST_EPOCH) {
            int last = i / RT_HIST_COLS == dims[0] - 1;
            if (!(v > before && v == floor(v) && v <= (double)r->epoch) ||
                (last && v != (double)r->epoch))
                bad = "the epochs of its rows in order, ending at the checkpoint's";
            before = v;
        } else if (isinf(v) || (c == RT_HIST_LR && !(v >= 0))) {
            bad = c == RT_HIST_LR ? "a learning rate" : "a metric";
        }
        if (bad)
            rt_path_error(path, "tensor 'train.history' holds %g at element %lld, not %s", v,
                          (long long)i, bad);
    }
}

/* early_stopping.best.PARAM (and .STATE): the best epoch's weights, kept in one flat copy
 * laid out as the params and then the states are, back to back. Weight i's name, and its
 * part of the copy *at bytes in; moves *at past it. */
static char *best_param(const run *r, int32_t i, size_t *at, char *name, size_t size) {
    const nnrt_tensor *t = weight(r->m, i);
    snprintf(name, size, "early_stopping.best.%s", t->name);
    char *part = (char *)r->best_params + *at;
    *at += (size_t)t->numel * rt_elem_size(r->m->f64);
    return part;
}

static void save_best_params(rt_st_writer *w, const run *r) {
    if (!r->best_params || r->best_epoch == 0) return;
    size_t at = 0;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        char name[512];
        const char *part = best_param(r, i, &at, name, sizeof name);
        rt_st_add(w, name, r->m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims, part);
    }
}

static void read_best_params(const rt_st_file *f, const char *path, run *r) {
    if (!r->best_params || r->best_epoch == 0) return;
    size_t at = 0;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        char name[512];
        char *part = best_param(r, i, &at, name, sizeof name);
        if (!rt_st_read(f, name, r->m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims, part))
            rt_path_error(path, "missing tensor '%s'", name);
        rt_st_check_values(f, name, part, t->numel, r->m->f64, 0);
    }
}

/* ---- the table ---- */

enum field_type {
    FIELD_TEXT,    /* metadata: text(r) is what a run writes; check() compares */
    FIELD_INT,     /* metadata: the int64_t at `at` in the run, as meta_int writes it */
    FIELD_REAL,    /* metadata: the double at `at`, as meta_real writes it */
    FIELD_RNG,     /* metadata: the rt_rng at `at`, as meta_rng writes it (parse_rng checks) */
    FIELD_TENSORS, /* tensors (or metadata the weights writer saves): save() and read() */
};

typedef struct field {
    const char *key; /* the metadata key; for tensors, their names as docs/runtime.md has them */
    enum field_type type;
    size_t at; /* INT, REAL, RNG: offsetof(run, ...) */
    void (*check)(const run *r, const char *path, const char *key, field_value v);
    const char *(*text)(const run *r);
    void (*save)(rt_st_writer *w, const run *r); /* NULL: the weights writer's */
    void (*read)(const rt_st_file *f, const char *path, run *r);
} field;

#define IN_RUN(member) .at = offsetof(run, member)

/* In the order resuming reads them: a check may use the fields above it. */
static const field fields[] = {
    {"nnrt.kind", FIELD_TEXT, .check = check_kind, .text = kind_text},
    {"text.vocab", FIELD_TENSORS, .read = read_vocab}, /* metadata; the weights writer's */
    {"PARAM", FIELD_TENSORS, .read = read_params},
    {"STATE", FIELD_TENSORS, .read = read_states},
    {"standardize.mean", FIELD_TENSORS, .read = read_standardize}, /* and .std */
    {"nnrt.epoch", FIELD_INT, IN_RUN(epoch), .check = check_epoch},
    {"nnrt.pos", FIELD_INT, IN_RUN(pos), .check = check_pos},
    {"nnrt.step", FIELD_INT, IN_RUN(step), .check = check_step},
    {"nnrt.samples", FIELD_INT, IN_RUN(partial.samples), .check = check_samples},
    {"nnrt.correct", FIELD_INT, IN_RUN(partial.correct), .check = check_correct},
    {"nnrt.loss_sum", FIELD_REAL, IN_RUN(partial.loss_sum), .check = check_finite},
    {"nnrt.shuffle_rng", FIELD_RNG, IN_RUN(shuffle_rng)},
    {"nnrt.noise_rng", FIELD_RNG, IN_RUN(noise_rng)},
    {"nnrt.best_epoch", FIELD_INT, IN_RUN(best_epoch), .check = check_best_epoch},
    {"nnrt.bad_epochs", FIELD_INT, IN_RUN(bad_epochs), .check = check_bad_epochs},
    {"nnrt.best", FIELD_REAL, IN_RUN(best), .check = check_best},
    {"nnrt.optimizer", FIELD_TEXT, .check = check_optimizer, .text = optimizer_text},
    {"optimizer.SLOT.PARAM", FIELD_TENSORS, .save = save_slots, .read = read_slots},
    /* the optimizer's t, which is the step count: a second copy, kept for the format */
    {"nnrt.optimizer_steps", FIELD_INT, IN_RUN(step), .check = check_optimizer_steps},
    {"train.order", FIELD_TENSORS, .save = save_order, .read = read_order},
    {"train.history", FIELD_TENSORS, .save = save_history, .read = read_history},
    {"early_stopping.best.PARAM", FIELD_TENSORS, .save = save_best_params,
     .read = read_best_params},
};

static const void *field_of(const run *r, const field *fd) {
    return (const char *)r + fd->at;
}

static void *field_in(run *r, const field *fd) {
    return (char *)r + fd->at;
}

static void save_field(rt_st_writer *w, const run *r, const field *fd) {
    switch (fd->type) {
    case FIELD_TEXT: rt_st_meta(w, fd->key, fd->text(r)); break;
    case FIELD_INT: meta_int(w, fd->key, *(const int64_t *)field_of(r, fd)); break;
    case FIELD_REAL: meta_real(w, fd->key, *(const double *)field_of(r, fd)); break;
    case FIELD_RNG: meta_rng(w, fd->key, field_of(r, fd)); break;
    case FIELD_TENSORS:
        if (fd->save) fd->save(w, r);
        break;
    }
}

/* Reads a field into the run once its check has passed. */
static void read_field(const rt_st_file *f, const char *path, run *r, const field *fd) {
    if (fd->type == FIELD_TENSORS) {
        fd->read(f, path, r);
        return;
    }
    const char *text = need_meta(f, path, fd->key);
    field_value v = {0};
    switch (fd->type) {
    case FIELD_TEXT: v.text = text; break;
    case FIELD_INT: v.i = parse_int(path, fd->key, text); break;
    case FIELD_REAL: v.x = parse_real(path, fd->key, text); break;
    case FIELD_RNG: parse_rng(path, fd->key, text, field_in(r, fd)); return;
    case FIELD_TENSORS: return;
    }
    if (fd->check) fd->check(r, path, fd->key, v);
    if (fd->type == FIELD_INT) *(int64_t *)field_in(r, fd) = v.i;
    if (fd->type == FIELD_REAL) *(double *)field_in(r, fd) = v.x;
}

#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

static void save_checkpoint(run *r, const char *path) {
    params_finite(r); /* a checkpoint is never written from a trial */
    gather_optimizer_state(r);
    rt_st_writer *w = rt_st_weights_writer(r->m, r->fixed, &r->data->stats);
    for (int i = 0; i < N_FIELDS; i++) save_field(w, r, &fields[i]);
    rt_st_write(w, path);
    rt_st_writer_free(w);
}

/* Continues exactly where the checkpoint stopped: params, optimizer state, counters, the
 * generators, this epoch's row order and metrics so far, early stopping's best. */
static void resume(run *r, const char *path) {
    rt_st_file *f = rt_st_open(path);
    for (int i = 0; i < N_FIELDS; i++) read_field(f, path, r, &fields[i]);
    rt_st_close(f);
    r->partial.judged = r->partial.samples * rt_class_layout_of(r->m).steps;
}

/* ---- the train command ---- */

/* Where the final lines go: stdout, unless the trace has it (stdout stays one clean CSV). */
static FILE *summary_stream(const rt_trace *trace) {
    return rt_trace_on_stdout(trace) ? stderr : stdout;
}

static void print_summary(const run *r, FILE *out) {
    const nnrt_model *m = r->m;
    const rt_train_data *d = r->data;
    if (!has_inputs(r)) {
        rt_metrics final = rt_evaluate(m, r->fixed, NULL, NULL, 0);
        fprintf(out, "final loss %.9g\n", rt_mean_loss(final));
        print_params(out, m, r->fixed);
        return;
    }
    /* The final lines come from the final weights over all training rows in file order,
     * the way eval reads a file, so eval on the same data prints the same loss. */
    rt_metrics final = rt_evaluate(m, r->fixed, &d->train, d->train_rows, d->n_train);
    int classify = m->train.classification;
    fprintf(out, "final loss %.9g\n", rt_mean_loss(final));
    if (classify) fprintf(out, "final accuracy %.4f\n", rt_accuracy(final));
    if (d->n_validation > 0) {
        rt_metrics v = rt_evaluate(m, r->fixed, d->validation, d->validation_rows, d->n_validation);
        fprintf(out, "validation loss %.9g\n", rt_mean_loss(v));
        if (classify) fprintf(out, "validation accuracy %.4f\n", rt_accuracy(v));
    }
}

/* A plot's panel of a series: the params with a gradient. */
static rt_plot_norms plot_norms(const run *r, const param_series *s, const char *title) {
    const nnrt_model *m = r->m;
    int64_t cols = m->n_params + 1;
    int n = 0;
    const char **names = rt_alloc_array((size_t)m->n_params + 1, sizeof *names);
    double *rows = rt_alloc_array((size_t)(s->n_rows * cols) + 1, sizeof *rows);
    for (int32_t i = 0; i < m->n_params; i++)
        if (m->params[i].grad_offset >= 0) names[n++] = m->params[i].name;
    for (int64_t k = 0; k < s->n_rows; k++) {
        const double *from = s->rows + k * cols;
        double *to = rows + k * (n + 1);
        to[0] = from[0];
        for (int32_t i = 0, j = 1; i < m->n_params; i++)
            if (m->params[i].grad_offset >= 0) to[j++] = from[1 + i];
    }
    return (rt_plot_norms){title, n, names, rows, s->n_rows};
}

/* The loss with the params set to point (rt_plot_descent.loss_at), by forward() in inference
 * mode. The caller puts the final params back. */
static double loss_at(void *arg, const double *point) {
    run *r = arg;
    set_path_point(r, point);
    r->eval_ctx.training = NNRT_INFERENCE;
    r->m->forward(&r->eval_ctx);
    return rt_batch_cost(r->m, &r->eval_ctx);
}

/* The names of the path's axes: "x", or "w[0]" for an element of a vector. */
static void path_names(const run *r, char names[2][96]) {
    int k = 0;
    for (int32_t i = 0; i < r->m->n_params; i++)
        for (int64_t e = 0; e < r->m->params[i].numel && k < 2; e++, k++) {
            const nnrt_tensor *t = &r->m->params[i];
            if (t->rank == 0)
                snprintf(names[k], sizeof names[k], "%s", t->name);
            else
                snprintf(names[k], sizeof names[k], "%s[%lld]", t->name, (long long)e);
        }
}

static void write_plot(run *r) {
    rt_plot_norms panels[RT_PLOT_MAX_PANELS];
    int n = 0;
    if (r->grad_norms.now) panels[n++] = plot_norms(r, &r->grad_norms, "gradient norm (log scale)");
    if (r->update_ratios.now)
        panels[n++] = plot_norms(r, &r->update_ratios, "||update|| / ||weights|| (log scale)");
    char names[2][96] = {"", ""};
    double final[2];
    rt_plot_descent descent = {
        r->path_dims, {names[0], names[1]}, r->path, r->path_rows, loss_at, r};
    if (r->path) {
        path_names(r, names);
        get_path_point(r, final);
    }
    rt_plot plot = {r->m->name,
                    has_inputs(r) ? "epoch" : "step",
                    r->history,
                    r->history_rows,
                    has_inputs(r) && r->m->train.classification,
                    panels,
                    n,
                    r->path && r->path_rows > 0 ? &descent : NULL};
    rt_plot_write(r->o->plot, &plot);
    if (r->path) set_path_point(r, final); /* the weights the run saves and prints */
    for (int k = 0; k < n; k++) {
        rt_free((void *)panels[k].names);
        rt_free((void *)panels[k].rows);
    }
}

static void write_outputs(run *r) {
    const rt_options *o = r->o;
    if (o->plot) write_plot(r);
    if (!o->save) return;
    rt_save_weights(r->m, r->fixed, &r->data->stats, o->save);
    if (!o->quiet) fprintf(stderr, "saved weights to %s\n", o->save);
}

/* ---- the files a run reads and writes ---- */

enum { MAX_FILE_USES = 16 };

typedef struct file_uses {
    rt_file_use v[MAX_FILE_USES];
    int n;
} file_uses;

static void add_use(file_uses *u, const char *role, const char *path, int output,
                    const char *may_replace) {
    if (path) u->v[u->n++] = (rt_file_use){role, path, output, may_replace};
}

/* A data option as data.c reads it: the file of that name, else "IMAGES,LABELS". */
static void add_data_use(file_uses *u, const char *role, const char *images_role,
                         const char *labels_role, const char *spec) {
    const char *comma = strchr(spec, ',');
    if (!comma || access(spec, F_OK) == 0) {
        add_use(u, role, spec, 0, NULL);
        return;
    }
    add_use(u, images_role, rt_strndup(spec, (size_t)(comma - spec)), 0, NULL);
    add_use(u, labels_role, comma + 1, 0, NULL);
}

void rt_check_run_files(const nnrt_model *m, const rt_options *o, int search) {
    file_uses u = {.n = 0};
    if (m->n_inputs > 0 && o->data) {
        add_data_use(&u, "--data", "--data (images)", "--data (labels)", o->data);
    } else if (m->n_inputs > 0) {
        add_use(&u, "the train block's data", m->train.data_path, 0, NULL);
        add_use(&u, "the train block's labels", m->train.data_path2, 0, NULL);
    }
    if (m->n_inputs > 0 && o->validation_data)
        add_data_use(&u, "--validation-data", "--validation-data (images)",
                     "--validation-data (labels)", o->validation_data);
    add_use(&u, "--init-weights", o->init_weights, 0, NULL);
    add_use(&u, "--save", o->save, 1, NULL);
    if (search) add_use(&u, "--plot", o->plot, 1, NULL); /* search writes these two only */
    if (!search) {
        add_use(&u, "--resume", o->resume, 0, NULL);
        /* Ctrl-C saves a checkpoint whatever --checkpoint-every says. Resuming from the file
         * it saves to continues that checkpoint: the usual way, and not a clash. */
        add_use(&u, "--checkpoint", o->checkpoint, 1, "--resume");
        add_use(&u, "--log", o->log, 1, NULL);
        add_use(&u, "--plot", o->plot, 1, NULL);
        if (o->trace && o->trace_out && !rt_is_dash(o->trace_out))
            add_use(&u, "--trace-out", o->trace_out, 1, NULL);
    }
    rt_check_file_uses(u.v, u.n);
}

static rt_options only_rank0_writes(const rt_options *o);
static void check_ranks_agree(const run *r);
static void check_ranks_hold_same_weights(const run *r);

int rt_cmd_train(const nnrt_model *m, const rt_options *given) {
    check_watching_shows(given);
    rt_options own = only_rank0_writes(given);
    const rt_options *o = &own;
    rt_check_run_files(m, o, 0);
    if (o->save) rt_check_writable(o->save);
    if (o->checkpoint_every > 0) rt_check_writable(o->checkpoint);
    if (o->plot) rt_check_writable(o->plot);
    if (o->log) rt_check_writable(o->log);
    if (o->resume && o->init_weights)
        rt_usage_error("give --resume FILE or --init-weights FILE, not both");
    if (o->resume && o->set)
        rt_usage_error("--set starts params at a value; a resumed run continues from its "
                       "checkpoint's: give --resume FILE or --set, not both");
    if (o->hogwild > 0) rt_hogwild_check(o, INT64_MAX); /* before the trace writes its header */
    rt_trace *trace = rt_trace_open(m, o);
    void *fixed = rt_new_fixed_arena(m);
    rt_start_weights(m, fixed, o);
    rt_train_data data;
    rt_load_train_data(m, o, &data);
    run r;
    run_init(&r, m, o, &data, fixed);
    rt_warn_threads_beyond_cpus(o);
    if (o->resume) resume(&r, o->resume);
    if (r.ranks > 1) check_ranks_agree(&r);
    r.trace = trace;
    r.progress = rt_progress_begin(m, o, data.n_validation > 0, o->resume != NULL);
    catch_interrupts(1);
    run_epochs(&r);
    catch_interrupts(0);
    rt_progress_end(r.progress);
    if (r.step == 0 && trace) { /* no update at all: the trace still has its starting point */
        int64_t count = data.n_train < r.batch ? data.n_train : r.batch;
        rt_trace_row(trace, 0, r.fixed, batch_loss(&r, data.train_rows, count));
    }
    rt_trace_close(trace);
    restore_best(&r);
    params_finite(&r);
    check_ranks_hold_same_weights(&r);
    write_outputs(&r);
    if (r.rank == 0) print_summary(&r, summary_stream(trace));
    run_free(&r);
    return 0;
}

/* ---- search's trials ---- */

int rt_train_trial(const nnrt_model *m, const rt_options *o, const rt_train_data *data, void *fixed,
                   rt_metrics *validation) {
    memset(fixed, 0, (size_t)m->fixed_elems * rt_elem_size(m->f64)); /* no earlier velocity */
    rt_start_weights(m, fixed, o);
    run r;
    run_init(&r, m, o, data, fixed);
    r.trial = 1;
    run_epochs(&r);
    restore_best(&r);
    int ok = r.stop != FAULTED && params_finite(&r);
    if (has_inputs(&r))
        *validation = rt_evaluate_ctx(m, &r.eval_ctx, data->validation, data->validation_rows,
                                      data->n_validation);
    else /* a function minimised: its final loss, as train prints it */
        *validation = rt_evaluate(m, fixed, NULL, NULL, 0);
    run_free(&r);
    return ok && isfinite(rt_mean_loss(*validation));
}
