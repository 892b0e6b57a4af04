/* grad_sum.h: a step's gradients through the sum by messages (ranks.h), bucket by bucket as
 * grad() finishes them, so that the first buckets travel while the backward pass computes
 * the rest (docs/mpi.md, "Overlap with the backward pass"). */
#ifndef NNRT_GRAD_SUM_H
#define NNRT_GRAD_SUM_H

#include <stdint.h>

#include "nnrt.h"

/* The bytes a bucket gathers before it may start: NNRT_MPI_BUCKET in the environment, or
 * RT_MPI_BUCKET_BYTES; 0 puts everything in one bucket, moved once grad() has returned. A
 * usage error when it is not a number. */
#define RT_MPI_BUCKET_BYTES (1 << 20)
int64_t rt_mpi_bucket_bytes(void);

/* The buffer holds the params' gradients in the order grad() finishes them
 * (nnrt_tensor.grad_point), cut into buckets of at least bucket_bytes at hook points, then
 * the states and n_extra doubles in the last bucket. */
typedef struct rt_grad_sum rt_grad_sum;
rt_grad_sum *rt_grad_sum_new(const nnrt_model *m, int64_t bucket_bytes, int n_extra);
/* How many buckets there are, and how many of them the last step started while grad()
 * was still running. */
int rt_grad_sum_buckets(const rt_grad_sum *s);
int rt_grad_sum_early(const rt_grad_sum *s);
/* A step begins: the gradients of `fixed` will go into the sum times weight, its states
 * times state_weight. Returns the listener for nnrt_ctx.on_grads during grad(), which moves
 * each bucket in and starts it as soon as grad() has finished it. */
void *rt_grad_sum_begin(rt_grad_sum *s, void *fixed, double weight, double state_weight);
double *rt_grad_sum_extras(rt_grad_sum *s);
/* After grad() (or without it, on a rank with no rows): the buckets not yet moved in, the
 * extras as they are, every rank's sum, and the sums back into the gradients and states. */
void rt_grad_sum_finish(rt_grad_sum *s);
void rt_grad_sum_free(rt_grad_sum *s);

#endif
