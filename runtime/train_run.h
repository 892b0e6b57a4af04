/* train_run.h: the training run that the loop (train.c), the ranks' step (train_ranks.c)
 * and the checkpoints (train_checkpoint.c) share. Not part of the runtime's interface. */
#ifndef NNRT_TRAIN_RUN_H
#define NNRT_TRAIN_RUN_H

#include <stdint.h>

#include "grad_sum.h"
#include "hogwild.h"
#include "optim.h"
#include "progress.h"
#include "ranks.h"
#include "rng.h"
#include "trace.h"
#include "train.h"
#include "two_ways.h"
#include "workers.h"

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
 * besides the params and the optimizer's state (the table `fields` of train_checkpoint.c). */
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

/* The weights a file saves: the params, then the states (running statistics). */
static inline int32_t n_weights(const nnrt_model *m) {
    return m->n_params + m->n_states;
}

static inline const nnrt_tensor *weight(const nnrt_model *m, int32_t i) {
    return i < m->n_params ? &m->params[i] : &m->states[i - m->n_params];
}

static inline int has_inputs(const run *r) {
    return r->m->n_inputs > 0;
}

/* ---- the loop's parts that the ranks' step and the checkpoints use (train.c) ---- */

/* Params and states to and from a flat copy (early stopping's best weights). */
void rt_run_copy_weights(const nnrt_model *m, void *fixed, void *flat, int to_flat);
/* The mean loss on rows[0..count) at the current weights, for the trace. */
double rt_run_batch_loss(run *r, const int64_t *rows, int64_t count);
/* --log-grad-norms and --log-update-ratios of the step just made, at an epoch's last step. */
void rt_run_grad_norms(run *r);
void rt_run_update_ratios(run *r);
/* The step about to run on count rows ends its epoch (or the run, at --steps). */
int rt_run_last_step_of_epoch(const run *r, int64_t count);
/* Whether the step's cost and faults let the run go on; stops it otherwise. */
int rt_run_step_ok(run *r, double cost, int32_t bad, enum rt_fault kind);
/* How many rows the epoch's next batch has, after rows[0..count): 0 at the epoch's end. */
int64_t rt_run_next_batch_rows(const run *r, const int64_t *rows, int64_t count);
/* Whether Ctrl-C came (the first one lets the step finish). */
int rt_run_interrupted(void);

/* ---- ranks (train_ranks.c, docs/mpi.md) ---- */

/* Checks that a run can be shared among the ranks, and starts the ranks' trial of evicting
 * (run_init, before its arenas exist). */
void rt_run_start_ranks(run *r);
/* The ranks' window on one machine (this rank's arena moves into its segment), else the sum
 * by messages. */
void rt_run_share_among_ranks(run *r);
/* Before the first step: every rank has the same rows, batch, steps and arena. */
void rt_run_check_ranks_agree(const run *r);
/* train_step on this rank's share of rows[0..count), then the update every rank makes. */
int rt_run_rank_step(run *r, const int64_t *rows, int64_t count, double lr);
/* Rank 0, before a checkpoint: each slice's optimizer state from the rank that updates it. */
void rt_run_gather_optimizer_state(run *r);
/* After the last step: every rank holds rank 0's weights (a fatal error otherwise). */
void rt_run_check_same_weights(const run *r);
/* The options of this rank: the others lose the log, the plot, the weights, the trace and
 * the checkpoints, which rank 0 writes. */
rt_options rt_only_rank0_writes(const rt_options *o);

/* ---- checkpoints (train_checkpoint.c) ---- */

/* Writes the checkpoint of the run as it stands (the caller has checked its weights, and
 * gathered the ranks' optimizer state). */
void rt_run_write_checkpoint(const run *r, const char *path);
/* Continues exactly where the checkpoint stopped. */
void rt_run_resume(run *r, const char *path);

#endif
