/* workers.h: synchronous data-parallel training on threads (--workers N; docs/runtime.md,
 * "Data-parallel workers").
 *
 * A team of N workers shares one set of params, the master fixed arena's. Worker 0 is the
 * calling thread with the run's own ctx; workers 1..N-1 are threads started once per run,
 * each with a fixed arena of its own for gradients and scratch (rt_new_sharing_ctx). At every
 * step each worker gathers a contiguous share of the batch's rows into its own arenas and
 * computes its gradient; the gradients are combined element by element in worker order into
 * the master's grad buffers, each worker combining a part of the elements; then each worker
 * runs the optimizer's update on that part. Nothing is allocated and no lock is taken inside
 * a step: workers wait for each other by spinning on atomic counters, and fall asleep only
 * after a bounded spin (between epochs, during validation). */
#ifndef NNRT_WORKERS_H
#define NNRT_WORKERS_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "nnrt.h"
#include "optim.h"

typedef struct rt_workers rt_workers;

/* The most --workers accepts: far more than any machine has cores. */
#define RT_MAX_WORKERS 256

/* The rows of a batch of `count` that worker k of n runs (and MPI rank k of n): [first,
 * first + rows). Worker 0 takes ceil(count / n) rows and the others as evenly as that leaves
 * (so worker 0, which writes the states, always has rows); a worker may have none when
 * count < n. */
typedef struct rt_share {
    int64_t first, rows;
} rt_share;
rt_share rt_worker_share(int64_t count, int n, int k);

/* The batch capacity each worker's ctx needs for steps of at most `batch` rows. */
int64_t rt_workers_cap(int64_t batch, int n);

/* Starts workers 1..n-1 (n >= 2). master: worker 0's ctx, over the master fixed arena, with
 * a batch_cap of at least rt_workers_cap; op: an optimizer on that arena made with
 * RT_OPTIM_FROM_GRADIENTS. Both must outlive the team. */
rt_workers *rt_workers_start(const nnrt_model *m, nnrt_ctx *master, rt_optim *op, int n);
/* Ends the threads and frees their arenas. */
void rt_workers_stop(rt_workers *w);

/* One update on rows[0..count) of d (count >= 1): the step of train.c's train_step, with
 * the same return value and *kind as rt_optim_step. Worker 0 runs with NNRT_TRAINING_STEP
 * and writes the states from its share; the others with NNRT_TRAINING. */
int32_t rt_workers_step(rt_workers *w, const rt_dataset *d, const int64_t *rows, int64_t count,
                        uint64_t noise_seed, double lr, int64_t t, enum rt_fault *kind);

/* After a step: its cost (the mean of the batch's per-sample losses, summed in row order as
 * rt_batch_cost sums them), and its batch added to *acc share by share in row order. */
double rt_workers_cost(const rt_workers *w);
void rt_workers_add_metrics(const rt_workers *w, const rt_dataset *d, rt_metrics *acc);

#endif
