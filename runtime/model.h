/* model.h: the runtime's side of the descriptor: checking it, allocating its arenas,
 * copying rows of a data set into a batch, and reading loss and accuracy back out. */
#ifndef NNRT_MODEL_H
#define NNRT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "nnrt.h"
#include "util.h"

/* Rows per call of forward/predict when evaluating a whole data set. eval and the final
 * loss of train both use it, so they split the same rows into the same chunks. */
#define RT_EVAL_CHUNK 1024

/* Stops the run with "model descriptor: ..." when the descriptor breaks a rule of nnrt.h
 * that the runtime relies on (offsets inside the arenas, known initialisers, unique names),
 * so a compiler bug cannot turn into a write out of bounds. */
void rt_check_model(const nnrt_model *m);
/* The same for one tensor: its shape, and its place in a fixed arena of fixed_elems elements
 * or a varying one of varying_elems a sample; role names it in the message ("param"). */
void rt_check_tensor_place(const nnrt_tensor *t, const char *role, int64_t fixed_elems,
                           int64_t varying_elems);

/* "OPTION: model 'M' has no param 'NAME' (its params: ...)", with a did-you-mean hint; exit 2. */
_Noreturn void rt_no_such_param(const nnrt_model *m, const char *option, const char *name,
                                size_t len);
/* The index of the param named name[0..len), or -1. */
int32_t rt_param_named(const nnrt_model *m, const char *name, size_t len);
/* Marks in on[] (n_params entries) the params that `pattern` (len bytes) names: an exact
 * name, or a glob (fnmatch: `enc.*`, `h?.W`). A pattern that names none is a usage error,
 * "OPTION: model 'm' has no param 'q' (its params: a, b)". */
void rt_mark_params(const nnrt_model *m, const char *option, const char *pattern, size_t len,
                    unsigned char *on);

/* Zeroed, 64-byte aligned arenas. */
void *rt_new_fixed_arena(const nnrt_model *m);
nnrt_ctx rt_new_ctx(const nnrt_model *m, void *fixed, int64_t batch_cap);
/* The batch eval, predict and validation run `rows` rows in: RT_EVAL_CHUNK at most, fewer
 * when the data has fewer rows or the model's values would not fit a batch that large. */
int64_t rt_eval_batch(const nnrt_model *m, int64_t rows);
void rt_free_ctx_varying(nnrt_ctx *ctx);

/* A context for one of several threads that share the params of `shared` (a fixed arena of
 * the model): a fixed arena of its own, a copy of shared (so gradients, velocities, scratch and
 * states start as there), with ctx.params = shared, and a varying arena of batch_cap rows. */
nnrt_ctx rt_new_sharing_ctx(const nnrt_model *m, void *shared, int64_t batch_cap);
/* Frees both arenas of such a context. */
void rt_free_sharing_ctx(nnrt_ctx *ctx);

/* predict's varying arena, which also holds the bindings it can print (nnrt.h): elements a
 * sample, the batch it runs `rows` rows in, and a ctx with that arena. */
int64_t rt_predict_elems(const nnrt_model *m);
int64_t rt_predict_batch(const nnrt_model *m, int64_t rows);
nnrt_ctx rt_new_predict_ctx(const nnrt_model *m, void *fixed, int64_t batch_cap);

/* Sample 0 of a tensor (varying or fixed) in the ctx's arenas. Inline: the metrics of a tiny
 * model's step ask for it a few times a step, where a call cost more than the address. */
static inline void *rt_tensor_data(const nnrt_model *m, const nnrt_ctx *ctx, const nnrt_tensor *t) {
    if (t->varying) return rt_elem_ptr(ctx->varying, t->offset * ctx->batch_cap, m->f64);
    return rt_elem_ptr(ctx->fixed, t->offset, m->f64);
}

/* Copies `count` rows (row indexes rows[0..count-1], or first..first+count-1 when rows is
 * NULL) into the inputs and, when with_targets, the targets; sets ctx->batch. */
void rt_fill_batch(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, const int64_t *rows,
                   int64_t first, int64_t count, int with_targets);
/* Rows rows[0..count-1], inputs and targets, into the batch's samples place ..
 * place + count - 1 (ctx->batch is left alone): threads fill a batch's parts at once. */
void rt_fill_rows(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, const int64_t *rows,
                  int64_t place, int64_t count);
/* Asks the memory for the rows a later rt_fill_batch(rows, count) will gather, so that they
 * arrive while a step runs: the next batch's, while this one's step runs (train.c). */
void rt_prefetch_batch(const nnrt_model *m, const rt_dataset *d, const int64_t *rows,
                       int64_t count);
/* The same, asked for by the step's products a few lines at a time (lines_ahead.h): called
 * just before the step, with rt_lines_ahead_rest() just after it. */
void rt_prefetch_batch_in_step(const nnrt_model *m, const rt_dataset *d, const int64_t *rows,
                               int64_t count);
/* The bytes of inputs that rt_fill_batch reads for `count` rows (0 for text). */
size_t rt_batch_input_bytes(const nnrt_model *m, const rt_dataset *d, int64_t count);

/* Whether any of n values (f64 or f32) is nan or inf, by a loop without a branch a value, so
 * that checking every weight after each epoch costs less than a step, even when an epoch is
 * one step of a tiny model. */
int rt_any_nonfinite(const void *values, int64_t n, int f64);

/* The cost grad() differentiates (nnrt.h): the mean of the batch's per-sample losses, or the
 * loss itself when it does not vary. Read after forward, grad or sgd_step. */
double rt_batch_cost(const nnrt_model *m, const nnrt_ctx *ctx);

/* How a classifier's output is judged (docs/runtime.md, "Accuracy"): the output's last
 * axis holds the classes and each axis before it is a step, so an output [T, V] makes T
 * predictions a sample, each the arg-max of its row of V (one value: a threshold). The first
 * target holds the same rows (one-hot, or 0/1 for one value), or with target_ids one class
 * id a step (a target [T] for an output [T, V]). A target of any other size is compared
 * with the whole output as one prediction (steps 1, classes numel). */
typedef struct rt_class_layout {
    int64_t steps;   /* predictions a sample */
    int64_t classes; /* values a prediction: 1 means the output is thresholded */
    int target_ids;  /* the target holds one class id a step */
} rt_class_layout;
rt_class_layout rt_class_layout_of(const nnrt_model *m);

/* The class one row of `classes` outputs predicts: its largest value's index, or for one
 * value whether it is past 0.5 (a probability) or 0 (a logit). */
int64_t rt_class_of(const nnrt_model *m, const void *row, int64_t classes);

/* Sums of per-sample loss and correct predictions over some batches: `judged` predictions
 * (samples times the layout's steps), `correct` of them right. */
typedef struct rt_metrics {
    double loss_sum;
    int64_t correct;
    int64_t samples;
    int64_t judged;
} rt_metrics;

/* acc += more, field by field (threads' and ranks' metrics, added in their order). */
void rt_add_metrics(rt_metrics *acc, rt_metrics more);

/* Adds the batch in ctx (after forward, grad or sgd_step) to *acc, and returns the batch's
 * cost, the same bits as rt_batch_cost (one pass over the losses for both). Targets are read
 * from the data set, not the arena, because the generated code may reuse their memory. */
double rt_add_batch_metrics(const nnrt_model *m, const nnrt_ctx *ctx, const rt_dataset *d,
                            const int64_t *rows, int64_t first, rt_metrics *acc);

/* Loss (and correct count) of the current weights over `n` rows (indexes `rows`, or all
 * rows in order when rows is NULL), by forward in chunks of RT_EVAL_CHUNK. */
rt_metrics rt_evaluate(const nnrt_model *m, void *fixed, const rt_dataset *d, const int64_t *rows,
                       int64_t n);

/* The same, with a ctx made once (its batch_cap rows at a time), so a loop of epochs
 * allocates nothing; training is 0 for these passes. */
rt_metrics rt_evaluate_ctx(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d,
                           const int64_t *rows, int64_t n);

static inline double rt_mean_loss(rt_metrics r) {
    return r.samples ? r.loss_sum / (double)r.samples : 0.0;
}
static inline double rt_accuracy(rt_metrics r) {
    return r.judged ? (double)r.correct / (double)r.judged : 0.0;
}

#endif
