/* workers.h: synchronous data-parallel training on threads (--workers N; docs/runtime.md,
 * "Data-parallel workers").
 *
 * On a model that has sgd_step_team and grad_team, the threads split the work of each step
 * of the compiled plan instead of the batch (rt_workers_start, and workers.c's "the team's
 * step"): one arena, the whole batch, one worker's results. Otherwise, as follows.
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

/* Starts workers 1..n-1 (n >= 2). master: worker 0's ctx, over the master fixed arena; op: an
 * optimizer on that arena. Both must outlive the team. For a model that has grad_team (and
 * sgd_step_team) the threads run each step together on the whole batch (the team's step:
 * master's batch_cap is at least the batch), through sgd_step_team when op is fused
 * (rt_optim_fused: made with RT_OPTIM_FUSE_WHEN_ABLE), else grad_team and the update by
 * parts; otherwise each runs grad() on its share of the rows as described above (op made
 * with RT_OPTIM_FROM_GRADIENTS, master's batch_cap at least rt_workers_cap). */
rt_workers *rt_workers_start(const nnrt_model *m, nnrt_ctx *master, rt_optim *op, int n);
/* Ends the threads and frees their arenas. */
void rt_workers_stop(rt_workers *w);

/* Puts the params back in rows (workers.c, "params in column blocks"): call it before
 * anything but the team's steps reads or writes the params. The next step cuts them again.
 * A no-op for NULL. */
void rt_workers_settle(rt_workers *w);

/* One update on rows[0..count) of d (count >= 1): the step of train.c's train_step, with
 * the same return value and *kind as rt_optim_step. Worker 0 runs with NNRT_TRAINING_STEP
 * and writes the states from its share; the others with NNRT_TRAINING. rows[count ..
 * count + ahead) are the next step's: in the batch split each thread asks for the rows it
 * will gather then once it has gathered this step's (rt_prefetch_batch). */
int32_t rt_workers_step(rt_workers *w, const rt_dataset *d, const int64_t *rows, int64_t count,
                        int64_t ahead, uint64_t noise_seed, double lr, int64_t t,
                        enum rt_fault *kind);

/* Called by the compiled sgd_step_team (nnrt.h) with its ctx.team, each of them the start
 * of a phase but sync (workers.c, "the team's step"): nnrt_team_sync waits until the phases
 * so far are done; nnrt_team_solo starts a phase that one thread runs, and returns 1 in the
 * thread that is to run it, which then calls nnrt_team_done; nnrt_team_sgemm (dgemm) is a
 * phase that computes a GEMM in blocks, its arguments cblas_sgemm's (row-major) after the
 * member. */
void nnrt_team_sync(void *member);
int nnrt_team_solo(void *member);
void nnrt_team_done(void *member);
void nnrt_team_sgemm(void *member, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc);
void nnrt_team_dgemm(void *member, int ta, int tb, int M, int N, int K, double alpha,
                     const double *A, int lda, const double *B, int ldb, double beta, double *C,
                     int ldc);

/* nnrt_sgemm_nn_bias_relu (in_place_gemm.h) as such a phase: each block of the product
 * stores its part of T = A·B + bias or of H = relu(T), one of them (the other NULL). */
void nnrt_team_sgemm_bias_relu(void *member, int M, int N, int K, const float *A, int lda,
                               const float *B, int ldb, const float *bias, float *T, float *H,
                               int ldc);
/* Its block p of n, outside a team (tests/runtime/packed_gemm_check.c: the blocks give the
 * whole call's bits where the whole product takes the kernel). */
void nnrt_team_sgemm_bias_relu_block(int p, int n, int M, int N, int K, const float *A, int lda,
                                     const float *B, int ldb, const float *bias, float *T, float *H,
                                     int ldc);

/* Block p of n of such a GEMM, as nnrt_team_sgemm (dgemm) runs it; a block may be empty.
 * (tests/runtime/team_gemm_check.c checks that the blocks give the whole GEMM's bytes.) */
void nnrt_team_sgemm_block(int p, int n, int ta, int tb, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc);
void nnrt_team_dgemm_block(int p, int n, int ta, int tb, int M, int N, int K, double alpha,
                           const double *A, int lda, const double *B, int ldb, double beta,
                           double *C, int ldc);

/* After a step: its batch added to *acc share by share in row order, and its cost returned
 * (one pass over the losses for both): the mean of the batch's per-sample losses, each
 * share's mean weighted by its rows (with the team's step, one share: rt_batch_cost's bits). */
double rt_workers_add_metrics(const rt_workers *w, const rt_dataset *d, rt_metrics *acc);

/* The CPUs this process may run on (its affinity mask: taskset, a container's cpuset), or
 * 0 when that cannot be read: more workers than these take turns on them. */
int rt_usable_cpus(void);

#endif
