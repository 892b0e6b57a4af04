/* mpi.c: ranks.h over MPI, for libnnrt_mpi (`nnc --mpi`). The program joins the job only
 * when an MPI launcher started it; then a fatal error on one rank ends every rank through
 * MPI_Abort (a rank blocked in a collective would otherwise wait for it forever), and the
 * sum of ranks.h is a reduce-scatter by MPI_Alltoallv, a sum in rank order, and an
 * MPI_Allgatherv: MPI_Allreduce does not promise every rank the same bits. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"
#include "util.h"

static int joined, rank, ranks = 1;

/* An error exit (util.c) on one rank of several: the message is out; the job ends. */
static void abort_job(int status) {
    fprintf(stderr, "%s: rank %d of %d stopped with the error above; ending every rank\n",
            rt_program_name(), rank, ranks);
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
}

/* Leaves the job at exit: the normal end, and a run that stopped on Ctrl-C on every rank. */
static void leave_job(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

int rt_ranks_start(void) {
    if (joined || rt_launched_ranks() == 0) return ranks;
    /* The runtime is single-threaded: MPI needs no thread support from it. */
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) rt_fatal("MPI_Init failed");
    joined = 1;
    atexit(leave_job);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    /* Errors of MPI itself (a peer gone) end the job too; that is MPI's default. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    if (ranks > 1) rt_set_exit_handler(abort_job);
    return ranks;
}

int rt_rank(void) {
    return rank;
}

int rt_ranks(void) {
    return ranks;
}

void rt_ranks_gather(const int64_t *mine, int n, int64_t *all) {
    if (ranks == 1) {
        memcpy(all, mine, (size_t)n * sizeof *all);
        return;
    }
    MPI_Allgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, MPI_COMM_WORLD);
}

/* ---- the sum ---- */

/* The buffer is n elements, padded to 8 bytes, then the extras. Rank j owns elements
 * [first[j], first[j + 1]) and, when it is the last, the padding and the extras: bytes
 * [at[j], at[j] + bytes[j]) of the buffer. */
struct rt_rank_sum {
    int f64;
    int64_t n;
    int n_extra;
    char *buf;
    size_t extras_at;
    int64_t *first;      /* ranks + 1 */
    int *at, *bytes;     /* ranks: each rank's slice of the buffer */
    int *from, *from_at; /* ranks: my slice as each rank sends it, in `pieces` */
    char *pieces;        /* ranks copies of my slice, rank by rank */
};

static int byte_count(size_t bytes) {
    if (bytes > INT_MAX)
        rt_fatal("a slice of the gradients is %zu bytes, more than MPI counts in one message "
                 "(%d): run on more ranks",
                 bytes, INT_MAX);
    return (int)bytes;
}

rt_rank_sum *rt_rank_sum_new(int64_t n, int f64, int n_extra) {
    rt_rank_sum *s = rt_alloc(sizeof *s);
    size_t esize = rt_elem_size(f64);
    s->f64 = f64;
    s->n = n;
    s->n_extra = n_extra;
    s->extras_at = ((size_t)n * esize + 7) / 8 * 8;
    size_t total = s->extras_at + (size_t)n_extra * sizeof(double);
    s->buf = rt_alloc_aligned(total + 1, 1);
    s->first = rt_alloc_array((size_t)ranks + 1, sizeof *s->first);
    s->at = rt_alloc_array((size_t)ranks, sizeof *s->at);
    s->bytes = rt_alloc_array((size_t)ranks, sizeof *s->bytes);
    /* Slices start at multiples of 16 elements, so every piece and the extras in it stay
     * aligned (64 bytes, 8 for the doubles). */
    for (int j = 0; j < ranks; j++) s->first[j] = n * j / ranks / 16 * 16;
    s->first[ranks] = n;
    for (int j = 0; j < ranks; j++) {
        size_t begin = (size_t)s->first[j] * esize;
        size_t end = j == ranks - 1 ? total : (size_t)s->first[j + 1] * esize;
        s->at[j] = byte_count(begin);
        s->bytes[j] = byte_count(end - begin);
    }
    int mine = s->bytes[rank];
    s->from = rt_alloc_array((size_t)ranks, sizeof *s->from);
    s->from_at = rt_alloc_array((size_t)ranks, sizeof *s->from_at);
    for (int i = 0; i < ranks; i++) {
        s->from[i] = mine;
        s->from_at[i] = byte_count((size_t)i * (size_t)mine);
    }
    s->pieces = rt_alloc_aligned((size_t)ranks * (size_t)mine + 1, 1);
    return s;
}

void *rt_rank_sum_elems(rt_rank_sum *s) {
    return s->buf;
}

double *rt_rank_sum_extras(rt_rank_sum *s) {
    return (double *)(void *)(s->buf + s->extras_at);
}

/* dst[e] = piece 0 + piece 1 + ... in rank order, for count values of type T whose pieces
 * are `stride` bytes apart. */
#define SUM_IN_RANK_ORDER(T, dst, pieces, stride, count)                                           \
    do {                                                                                           \
        T *out_ = (T *)(void *)(dst);                                                              \
        for (int64_t e_ = 0; e_ < (count); e_++) {                                                 \
            T acc_ = ((const T *)(const void *)(pieces))[e_];                                      \
            for (int i_ = 1; i_ < ranks; i_++)                                                     \
                acc_ += ((const T *)(const void *)((pieces) + (size_t)i_ * (stride)))[e_];         \
            out_[e_] = acc_;                                                                       \
        }                                                                                          \
    } while (0)

/* My slice: its elements in the model's type, and for the last rank the extras. */
static void sum_my_slice(rt_rank_sum *s) {
    size_t stride = (size_t)s->bytes[rank];
    int64_t count = s->first[rank + 1] - s->first[rank];
    char *dst = s->buf + s->at[rank];
    if (s->f64)
        SUM_IN_RANK_ORDER(double, dst, s->pieces, stride, count);
    else
        SUM_IN_RANK_ORDER(float, dst, s->pieces, stride, count);
    if (rank != ranks - 1) return;
    size_t extras = s->extras_at - (size_t)s->at[rank];
    SUM_IN_RANK_ORDER(double, s->buf + s->extras_at, s->pieces + extras, stride, s->n_extra);
}

void rt_rank_sum_all(rt_rank_sum *s) {
    if (ranks == 1) return;
    /* Rank j gets slice j of every rank's buffer, adds them up, and everybody gathers. */
    MPI_Alltoallv(s->buf, s->bytes, s->at, MPI_BYTE, s->pieces, s->from, s->from_at, MPI_BYTE,
                  MPI_COMM_WORLD);
    sum_my_slice(s);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, s->buf, s->bytes, s->at, MPI_BYTE, MPI_COMM_WORLD);
}

void rt_rank_sum_free(rt_rank_sum *s) {
    if (!s) return;
    rt_free(s->buf);
    rt_free(s->first);
    rt_free(s->at);
    rt_free(s->bytes);
    rt_free(s->from);
    rt_free(s->from_at);
    rt_free(s->pieces);
    rt_free(s);
}
