/* optim.h: optimizers (a row each in optimizers.def; docs/runtime.md cites the paper of
 * each), the penalties, gradient clipping and the check for non-finite values. Plain sgd
 * without anything that needs the raw gradient runs the model's fused sgd_step; everything
 * else calls grad() and updates the params here, in loops that vectorise and allocate
 * nothing. */
#ifndef NNRT_OPTIM_H
#define NNRT_OPTIM_H

#include <stdint.h>
#include <stdio.h>

#include "nnrt.h"
#include "options.h"

#define RT_OPTIM_MAX_SLOTS 2

typedef struct rt_optim rt_optim;

/* How steps run: RT_OPTIM_FUSE_WHEN_ABLE lets plain sgd run the model's fused sgd_step;
 * RT_OPTIM_FROM_GRADIENTS always leaves the gradient in the grad buffers first, for those who
 * combine gradients before the update (workers, MPI ranks) and then call rt_optim_apply. */
enum rt_optim_kind { RT_OPTIM_FUSE_WHEN_ABLE, RT_OPTIM_FROM_GRADIENTS };

/* Checks the optimizer options (l1/l2 names, eps) and allocates the state, zeroed. A bad
 * option is a usage error. */
rt_optim *rt_optim_new(const nnrt_model *m, void *fixed, const rt_options *o,
                       enum rt_optim_kind kind);
void rt_optim_free(rt_optim *op);

/* Whether steps run the model's fused sgd_step (no gradient to inspect). */
int rt_optim_fused(const rt_optim *op);

/* Update step t (1 at the first; Adam's bias correction counts them) on the batch in ctx at
 * learning rate lr. Returns -1, or the index of a param whose gradient is not finite
 * (RT_FAULT_GRADIENT in *kind; the update is then incomplete, and the step a fault), or of a
 * param whose value is not finite after the update (RT_FAULT_VALUE). The fused step has no gradient
 * to check and returns -1: the caller, which reads the step's cost anyway (rt_add_batch_metrics),
 * then asks rt_optim_loss_outcome, so that the losses are summed once a step. */
enum rt_fault { RT_FAULT_GRADIENT, RT_FAULT_VALUE };
int32_t rt_optim_step(rt_optim *op, nnrt_ctx *ctx, double lr, int64_t t, enum rt_fault *kind);
/* A step's outcome from its cost, after rt_optim_step (or a team's sgd_step_team): with the
 * fused step, -1 or a param whose value is not finite, found when the cost is not
 * (RT_FAULT_VALUE); with the others, -1. */
int32_t rt_optim_loss_outcome(const rt_optim *op, double cost);
/* The momentum the fused step is given. */
double rt_optim_momentum(const rt_optim *op);
/* The update of step t from the gradients already in fixed's grad buffers (penalties,
 * clipping, the optimizer's loop), with the same return value and *kind as rt_optim_step.
 * Not for a fused optimizer. */
int32_t rt_optim_apply(rt_optim *op, double lr, int64_t t, enum rt_fault *kind);

/* The same update split among threads, each on a part of its elements: the elements of the
 * params that have a gradient, in param order (rt_optim_elems in all). rt_optim_begin sets
 * the step (one thread, before the others start); then each part's rt_optim_prepare_part
 * (penalties; returns the part's sum of squares); once every part is prepared, each part's
 * rt_optim_update_part with rt_optim_clip_scale of the sum of all parts' sums. That returns
 * the part's first param whose gradient is not finite, or -1, and sets *bad_value, when it is
 * still < 0, to the first param not finite after the update: called chunk by chunk of a part
 * with one bad_value, it keeps the part's first. Parts that do not overlap may run at the
 * same time. A gradient's fault comes before a value's, in any part. */
int64_t rt_optim_elems(const rt_optim *op);
void rt_optim_begin(rt_optim *op, double lr, int64_t t);
double rt_optim_prepare_part(rt_optim *op, int64_t lo, int64_t hi);
double rt_optim_clip_scale(const rt_optim *op, double sum_sq);
/* Whether the update clips (so a part's update needs every part's sum of squares first). */
int rt_optim_clips(const rt_optim *op);
int32_t rt_optim_update_part(rt_optim *op, int64_t lo, int64_t hi, double scale,
                             int32_t *bad_value);

/* The first param without a gradient (which no update touches) that is not finite, or -1:
 * rt_optim_apply ends with it, and so must an update made by parts. */
int32_t rt_optim_nonfinite_without_gradient(const rt_optim *op);

/* For MPI ranks that share memory (docs/mpi.md): the gradients are in `fixed`, the params are
 * read and updated in `params` (an arena laid out as fixed, which every rank updates a part
 * of), and the state moves to state_memory (rt_optim_state_bytes of it, laid out alike on
 * every rank), its values with it. Not for a fused optimizer. */
size_t rt_optim_state_bytes(const rt_optim *op);
void rt_optim_share(rt_optim *op, void *fixed, void *params, void *state_memory);
/* Copies the state of the elements [lo, hi) (as rt_optim_update_part counts them) from
 * another rank's state memory: a checkpoint's state is gathered from the ranks that updated
 * each part. */
void rt_optim_copy_state_part(rt_optim *op, const void *from, int64_t lo, int64_t hi);

/* The state, for checkpoints: slot s (0 .. slots-1, the optimizer's row in optimizers.def)
 * of param i, numel elements of the model's type, or NULL when that param has none (no
 * gradient) or the slot is left out (a velocity without momentum). */
int rt_optim_slots(const rt_optim *op);
const char *rt_optim_slot_name(const rt_optim *op, int s);
/* Whether slot s holds values that are never negative (averages of squares, maxima). */
int rt_optim_slot_nonnegative(const rt_optim *op, int s);
void *rt_optim_state(const rt_optim *op, int s, int32_t param);

/* ---- the table of optimizers (optimizers.def), for --help ---- */

/* Whether `setting` (an option's name) is one an optimizer reads; if so buf gets the names
 * of those that do, "adam, adamw". */
int rt_optim_readers(const char *setting, char *buf, size_t size);
/* Whether the optimizer of that name reads `setting` (0 for an unknown name). */
int rt_optim_reads(const char *optimizer, const char *setting);
/* The default of such a setting when its option has no value of its own: the default of
 * `optimizer` when it reads it ("0.999"), else each reader's ("adagrad 1e-10, adadelta
 * 1e-06, others 1e-08") or the one they share. */
void rt_optim_default_text(const char *setting, const char *optimizer, char *buf, size_t size);
/* The optimizers, a line each: name, help, paper. */
void rt_optim_print_list(FILE *out);

/* The learning rate of an epoch (1-based; a step for a model without inputs) under the
 * schedule and warm-up of o, for a run of `epochs`. */
double rt_schedule_lr(const rt_options *o, int64_t epoch, int64_t epochs);
/* Whether that rate is o->lr at every epoch (no schedule, no warm-up): the loop then need not
 * ask each epoch, which a one-step epoch would feel. */
int rt_schedule_constant(const rt_options *o);

#endif
