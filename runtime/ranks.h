/* ranks.h: training across processes, the ranks of an MPI job (docs/mpi.md). libnnrt links
 * solo.c, one process that is rank 0 of 1; libnnrt_mpi, which `nnc --mpi` links, links mpi.c,
 * which joins the job when mpirun started the program. Everything else in the runtime is
 * the same code in both: train.c asks how many ranks there are and splits its steps. */
#ifndef NNRT_RANKS_H
#define NNRT_RANKS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* Joins the job when the program was started by mpirun (a plain start is one process and
 * touches no MPI). From then on a fatal error on any rank stops every rank (MPI_Abort), and
 * the job is left at exit. Returns the number of ranks. solo.c refuses to be one of several
 * ranks: each would train alone and all would write the same files. */
int rt_ranks_start(void);
/* This process's rank, 0 .. rt_ranks() - 1: 0 and 1 before rt_ranks_start. */
int rt_rank(void);
int rt_ranks(void);
/* The number of ranks mpirun (or another MPI launcher) started this program as, from the
 * environment it sets (OMPI_COMM_WORLD_SIZE, PMI_SIZE); 0 when none did. */
int rt_launched_ranks(void);

/* What `train --help` adds about training under mpirun, for program `prog`: nothing without
 * MPI (solo.c). */
void rt_ranks_print_help(FILE *out, const char *prog);

/* Every rank's n values, rank by rank, in all[0 .. n * rt_ranks()). Collective. */
void rt_ranks_gather(const int64_t *mine, int n, int64_t *all);

/* Memory the ranks share when they all run on one machine (and NNRT_MPI_SUM does not ask for
 * messages): a segment of `bytes` for each rank, which every rank reads and writes directly.
 * Collective; NULL when the ranks cannot share memory (several machines), or an error when
 * NNRT_MPI_SUM=shared asked for it. Segments are page-aligned. */
typedef struct rt_rank_window rt_rank_window;
rt_rank_window *rt_rank_window_new(size_t bytes);
void *rt_rank_window_segment(rt_rank_window *w, int rank);
/* Every rank's stores to the window before the call are seen by every rank after it. It
 * spins briefly, then gives the core away while it waits. Collective. */
void rt_rank_window_barrier(rt_rank_window *w);
void rt_rank_window_free(rt_rank_window *w);

/* A sum over the ranks by messages, for ranks that do not share memory, that gives every
 * rank the same bits, whatever algorithms the MPI library picks: n elements of the model's
 * type (float, or double when f64), then n_extra doubles, in one buffer. The elements are
 * cut into buckets (elements [0, bucket_ends[0]), [bucket_ends[0], bucket_ends[1]), ..; n is
 * the last end), which can start moving one by one while the buffer's later buckets are
 * still being filled; the extras ride in the last. Each bucket is cut into one slice a rank;
 * each rank adds up its slice of every rank's bucket in rank order 0, 1, .., K-1 and hands
 * the result to all (a reduce-scatter and an all-gather, as a ring all-reduce moves the
 * data). An element's sum does not depend on the buckets. */
typedef struct rt_rank_sum rt_rank_sum;
rt_rank_sum *rt_rank_sum_new(const int64_t *bucket_ends, int n_buckets, int f64, int n_extra);
void *rt_rank_sum_elems(rt_rank_sum *s);
double *rt_rank_sum_extras(rt_rank_sum *s);
/* Starts moving bucket b, whose elements are in the buffer; buckets start in order, each
 * once until rt_rank_sum_all, which starts those left (a call out of order does nothing).
 * Collective, and non-blocking: the buffer's bucket must not change until the sum is over. */
void rt_rank_sum_start(rt_rank_sum *s, int b);
/* Lets MPI move the buckets under way (it advances them only inside its calls). */
void rt_rank_sum_progress(rt_rank_sum *s);
/* Replaces the buffer's values, on every rank, by their sum over the ranks. Collective. */
void rt_rank_sum_all(rt_rank_sum *s);
void rt_rank_sum_free(rt_rank_sum *s);

#endif
