/* train.c: the training loop. Rows are split once into training and validation rows,
 * reshuffled every epoch, gathered into batches and handed to the optimizer (optim.c);
 * after each epoch the validation rows are measured, early stopping decides, and a
 * checkpoint may be written. Progress goes to progress.c, a row per step to the --trace
 * CSV, the final lines to stdout (stderr when the trace is on stdout). Nothing in the loop
 * allocates: every buffer exists before the first step. Under mpirun a step is the ranks'
 * (train_ranks.c); checkpoints are written and resumed by train_checkpoint.c; the run they
 * all hold is train_run.h's. */
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
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
#include "train_run.h"
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

static int64_t total_weight_elems(const nnrt_model *m) {
    int64_t n = 0;
    for (int32_t i = 0; i < n_weights(m); i++) n += weight(m, i)->numel;
    return n;
}

/* Params and states to and from a flat copy (early stopping's best weights). */
void rt_run_copy_weights(const nnrt_model *m, void *fixed, void *flat, int to_flat) {
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

/* The trial of two ways (two_ways.h) of how one process asks for the next batch: warm-up
 * steps, steps timed, steps a block. W1's steps take 40-90 us, so the trial lasts a few
 * hundredths of a second. */
enum { ASK_TRIAL_WARMUP = 64, ASK_TRIAL_STEPS = 512, ASK_TRIAL_BLOCK = 8 };

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
    if (r->ranks > 1) rt_run_start_ranks(r);
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
    if (r->ranks > 1) rt_run_share_among_ranks(r);
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
double rt_run_batch_loss(run *r, const int64_t *rows, int64_t count) {
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
void rt_run_grad_norms(run *r) {
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
    rt_run_grad_norms(r);
}

/* The step about to run on count rows ends its epoch (or the run, at --steps). */
int rt_run_last_step_of_epoch(const run *r, int64_t count) {
    if (!has_inputs(r)) return 1;
    return r->pos + count >= r->data->n_train || (r->o->steps > 0 && r->step + 1 == r->o->steps);
}

/* --log-update-ratios: before an epoch's last step the weights go to before_update
 * (copy_weights), and after it each param's ||new - old|| / ||old|| is taken (NaN without a
 * gradient; inf when the old weights were all 0 and the step moved them). */
void rt_run_update_ratios(run *r) {
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
int rt_run_step_ok(run *r, double cost, int32_t bad, enum rt_fault kind) {
    if (isfinite(cost) && bad < 0) return 1;
    if (!r->trial) fault(r, cost, bad, kind);
    r->stop = FAULTED;
    return 0;
}

/* The rows of the epoch's next batch, after rows[0..count) (the order's): how many there
 * are. The step asks for them while it runs, so that their gather finds them in the caches
 * (model.c, rt_prefetch_batch). */
int64_t rt_run_next_batch_rows(const run *r, const int64_t *rows, int64_t count) {
    int64_t left = r->order + r->data->n_train - (rows + count);
    return left < r->batch ? left : r->batch;
}

/* The same step split among the workers (workers.h): the same noise_seed, each worker's
 * share of the rows and their combined gradient, one update. */
static int workers_step(run *r, const int64_t *rows, int64_t count, double lr) {
    uint64_t noise_seed = rt_rng_next(&r->noise_rng);
    r->step++;
    enum rt_fault kind;
    int32_t bad =
        rt_workers_step(r->workers, &r->data->train, rows, count,
                        rt_run_next_batch_rows(r, rows, count), noise_seed, lr, r->step, &kind);
    /* The epoch's metrics and the step's cost in one pass, as train_step's. */
    double cost = rt_workers_add_metrics(r->workers, &r->data->train, &r->partial);
    if (bad < 0) bad = rt_optim_loss_outcome(r->opt, cost);
    if (!isfinite(cost) || bad >= 0) rt_workers_settle(r->workers); /* a fault reads them */
    return rt_run_step_ok(r, cost, bad, kind);
}

/* Asks for the next batch's rows the way this machine's steps have run faster: all at once
 * now, or queued for the step's products (lines_ahead.h). Queued, W1's loop ran 2% faster than
 * with every line asked for at once before the step on a Zen 4, and 1-2% slower on a Zen 5
 * (bench/README.md, "The next batch's lines: queued or at once, measured"), so the loop times
 * its first steps both ways (two_ways.h), each step with its gather. */
static void ask_for_next_batch(run *r, const int64_t *rows, int64_t count) {
    const int64_t *next = rows + count;
    int64_t n = rt_run_next_batch_rows(r, rows, count);
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
    if (r->ranks > 1) return rt_run_rank_step(r, rows, count, lr);
    if (r->workers) return workers_step(r, rows, count, lr);
    if (r->trace && r->step == 0)
        rt_trace_row(r->trace, 0, r->fixed, rt_run_batch_loss(r, rows, count));
    /* The trial times only steps that gather their batch: a batch kept in the arena asks
     * for nothing, and a clock read would cost a one-step epoch a tenth of its time. */
    int timed = rt_two_ways_timing(&r->asks) && !r->batch_in_arena;
    double start = timed ? rt_now() : 0;
    if (!r->batch_in_arena) rt_fill_batch(r->m, &r->ctx, &r->data->train, rows, 0, count, 1);
    r->batch_in_arena = whole_set_batch(r);
    r->ctx.training = NNRT_TRAINING_STEP;
    r->ctx.noise_seed = rt_rng_next(&r->noise_rng);
    int last = rt_run_last_step_of_epoch(r, count);
    if (r->grad_norms.now && last) measure_grad_norms(r);
    if (r->update_ratios.now && last) rt_run_copy_weights(r->m, r->fixed, r->before_update, 1);
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
    if (!rt_run_step_ok(r, cost, bad, kind)) return 0;
    if (r->update_ratios.now && last) rt_run_update_ratios(r);
    if (r->trace) rt_trace_row(r->trace, r->step, r->fixed, rt_run_batch_loss(r, rows, count));
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
        rt_run_copy_weights(r->m, r->fixed, r->best_params, 1);
    } else if (++r->bad_epochs >= r->o->patience) {
        r->stop = STOPPED_EARLY;
    }
}

/* A checkpoint (train_checkpoint.c) of finite weights only, and never from a trial; under
 * mpirun rank 0 first gathers each slice's optimizer state from the rank that updates it. */
static void save_checkpoint(run *r, const char *path) {
    params_finite(r);
    rt_run_gather_optimizer_state(r);
    rt_run_write_checkpoint(r, path);
}

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

int rt_run_interrupted(void) {
    return interrupted != 0;
}

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
    rt_run_copy_weights(r->m, r->fixed, r->best_params, 0);
    if (!r->progress || r->o->quiet) return;
    const char *what = strcmp(r->o->monitor, "accuracy") == 0 ? "accuracy" : "loss";
    if (r->stop == STOPPED_EARLY)
        fprintf(stderr, "early stopping: validation %s has not improved for %lld epochs\n", what,
                (long long)r->bad_epochs);
    fprintf(stderr, "restored the weights of epoch %lld (validation %s %.6g)\n",
            (long long)r->best_epoch, what, r->best);
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

int rt_cmd_train(const nnrt_model *m, const rt_options *given) {
    check_watching_shows(given);
    rt_options own = rt_only_rank0_writes(given);
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
    if (o->resume) rt_run_resume(&r, o->resume);
    if (r.ranks > 1) rt_run_check_ranks_agree(&r);
    r.trace = trace;
    r.progress = rt_progress_begin(m, o, data.n_validation > 0, o->resume != NULL);
    catch_interrupts(1);
    run_epochs(&r);
    catch_interrupts(0);
    rt_progress_end(r.progress);
    if (r.step == 0 && trace) { /* no update at all: the trace still has its starting point */
        int64_t count = data.n_train < r.batch ? data.n_train : r.batch;
        rt_trace_row(trace, 0, r.fixed, rt_run_batch_loss(&r, data.train_rows, count));
    }
    rt_trace_close(trace);
    restore_best(&r);
    params_finite(&r);
    rt_run_check_same_weights(&r);
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
