/* mpi.c: ranks.h over MPI, for libnnrt_mpi (`nnc --mpi`). The program joins the job only
 * when an MPI launcher started it; then a fatal error on one rank ends every rank through
 * MPI_Abort (a rank blocked in a collective would otherwise wait for it forever). When every
 * rank runs on one machine the ranks share one MPI shared-memory window, a segment each, and
 * meet at a barrier of their own (train_ranks.c adds up and updates in it); across machines the sum
 * of ranks.h is a reduce-scatter, a sum in rank order, and an all-gather, by MPI_Alltoallv and
 * MPI_Allgatherv: MPI_Allreduce does not promise every rank the same bits. */
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grad_sum.h"
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

void rt_ranks_print_help(FILE *out, const char *prog) {
    fprintf(out,
            "\nUnder mpirun (compiled with nnc --mpi), `mpirun -np K %s train ...` trains on K\n"
            "processes, each on its share of every batch; rank 0 writes the progress, the log,\n"
            "the weights and the checkpoints (docs/mpi.md). In the ranks' environment\n"
            "(mpirun -x NAME=VALUE):\n"
            "  NNRT_MPI_SUM=shared|messages  how the ranks add up their gradients (default: in\n"
            "                                shared memory when all run on one machine, else by\n"
            "                                messages)\n"
            "  NNRT_MPI_BUCKET=BYTES         by messages: gradients go in buckets of at least\n"
            "                                this many bytes, sent while grad() runs (default:\n"
            "                                %d; 0: one bucket, after it)\n",
            prog, RT_MPI_BUCKET_BYTES);
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

/* ---- how the ranks add up ---- */

/* NNRT_MPI_SUM=shared (in shared memory, or an error when the ranks are on several
 * machines), =messages (by messages, wherever they run), or unset (in shared memory when
 * every rank runs on one machine). docs/mpi.md, "How the sum moves the data". */
enum sum_path { SUM_CHOOSE, SUM_SHARED, SUM_MESSAGES };
static enum sum_path asked_path(void) {
    const char *how = getenv("NNRT_MPI_SUM");
    if (!how || !*how) return SUM_CHOOSE;
    if (strcmp(how, "shared") == 0) return SUM_SHARED;
    if (strcmp(how, "messages") == 0) return SUM_MESSAGES;
    rt_usage_error("NNRT_MPI_SUM=%s: give shared or messages, or leave it unset", how);
}

/* Whether the barrier's counter can live in memory two processes share: C11 promises a
 * lock-free atomic nothing more (a lock would be this process's own). */
static int counters_lock_free(void) {
    _Atomic uint64_t probe;
    atomic_init(&probe, 0);
    return atomic_is_lock_free(&probe);
}

/* Whether the ranks share memory: every rank runs on this machine and none asks for
 * messages. Collective, and every rank decides alike. If so *node is the machine's
 * communicator, its ranks in world order. */
static int on_one_machine(MPI_Comm *node) {
    enum sum_path path = asked_path();
    int size = 0, mine, all = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, node);
    MPI_Comm_size(*node, &size);
    mine = path != SUM_MESSAGES && size == ranks && counters_lock_free();
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) return 1;
    MPI_Comm_free(node);
    if (path == SUM_SHARED)
        rt_fatal("NNRT_MPI_SUM=shared, but the ranks cannot share memory (%d of the %d run on "
                 "this machine, or a rank asked for messages): leave NNRT_MPI_SUM unset",
                 size, ranks);
    return 0;
}

/* ---- memory the ranks of one machine share ---- */

/* Every rank's segment of one MPI shared-memory window, and a barrier. */
struct rt_rank_window {
    MPI_Win win;
    MPI_Comm node;
    char **segment;        /* ranks: each rank's segment, as this process sees it */
    _Atomic uint64_t *met; /* arrivals at the barriers so far, in rank 0's segment */
    uint64_t barriers;     /* barriers this rank has passed */
};

/* Each segment of the window starts with a cache line for the barrier's counter (rank 0's
 * is the one used), then the rank's own bytes. */
#define COUNTER_ROOM 64

rt_rank_window *rt_rank_window_new(size_t bytes) {
    MPI_Comm node;
    if (ranks == 1 || !on_one_machine(&node)) return NULL;
    rt_rank_window *w = rt_alloc(sizeof *w);
    w->node = node;
    /* each rank's segment on pages of its own (alloc_shared_noncontig): a rank's stores
     * do not share a page, or a cache line, with another's */
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    char *mine;
    MPI_Win_allocate_shared((MPI_Aint)(COUNTER_ROOM + bytes + 1), 1, info, node, &mine, &w->win);
    MPI_Info_free(&info);
    w->segment = rt_alloc_array((size_t)ranks, sizeof *w->segment);
    for (int j = 0; j < ranks; j++) {
        MPI_Aint size;
        int unit;
        char *base;
        MPI_Win_shared_query(w->win, j, &size, &unit, &base);
        w->segment[j] = base + COUNTER_ROOM;
        if (j == 0) w->met = (_Atomic uint64_t *)(void *)base;
    }
    if (rank == 0) atomic_init(w->met, 0);
    MPI_Win_sync(w->win);
    MPI_Barrier(node); /* the counter is zero before anyone counts */
    MPI_Win_sync(w->win);
    return w;
}

void *rt_rank_window_segment(rt_rank_window *w, int j) {
    return w->segment[j];
}

/* Turns of the barrier's wait that only pause (tens of nanoseconds each on a recent x86:
 * about 0.1 ms in all) before it yields the core, the seconds of yielding before it sleeps
 * between looks, and the length of a sleep. */
#define SPIN_TURNS    2048
#define YIELD_SECONDS 0.001
#define NAP_NANOS     50000

/* Each rank adds its arrival to one counter in shared memory (a sequentially consistent
 * add: its stores before it, its loads after) and waits until all ranks' arrivals at this
 * barrier are in. The wait spins, then yields the core, then naps: MPI_Barrier would spin in
 * MPI's progress loop, and on a machine with more busy processes than cores a rank that
 * holds a core it only waits on keeps the rank it waits for from running. */
void rt_rank_window_barrier(rt_rank_window *w) {
    w->barriers++;
    uint64_t target = w->barriers * (uint64_t)ranks;
    atomic_fetch_add(w->met, 1);
    double since = 0;
    for (uint32_t turn = 1; atomic_load(w->met) < target; turn++) {
        if (turn < SPIN_TURNS) {
            rt_cpu_relax();
        } else if (since == 0 || rt_now() - since < YIELD_SECONDS) {
            if (since == 0) since = rt_now();
            sched_yield();
        } else {
            struct timespec nap = {0, NAP_NANOS};
            nanosleep(&nap, NULL);
        }
    }
}

void rt_rank_window_free(rt_rank_window *w) {
    if (!w) return;
    MPI_Win_free(&w->win); /* collective, as every rank frees it at the run's end */
    MPI_Comm_free(&w->node);
    rt_free(w->segment);
    rt_free(w);
}

/* ---- the sum by messages ---- */

/* The buffer is the buckets' elements one after the other, padded to 8 bytes, then the
 * extras. Each bucket is cut into one slice a rank: rank j owns elements [first[j],
 * first[j + 1]) of it and, in the last bucket when it is the last rank, the padding and the
 * extras: bytes [at[j], at[j] + bytes[j]) of the buffer. The pieces of a bucket that the
 * ranks send this one (its slice, from each rank in rank order) land in `pieces`. */
typedef struct bucket {
    int64_t *first;      /* ranks + 1 */
    int *at, *bytes;     /* ranks: each rank's slice of the buffer */
    int *from, *from_at; /* ranks: my slice as each rank sends it, rank by rank, in `pieces` */
    char *pieces;
    MPI_Request scatter, gather; /* the reduce-scatter and the all-gather under way */
} bucket;

struct rt_rank_sum {
    int f64;
    int n_extra;
    char *buf;
    size_t extras_at;
    bucket *buckets;
    int n_buckets;
    int started; /* buckets whose reduce-scatter has started this round */
};

static int byte_count(size_t bytes) {
    if (bytes > INT_MAX)
        rt_fatal("a slice of the gradients is %zu bytes, more than MPI counts in one message "
                 "(%d): run on more ranks",
                 bytes, INT_MAX);
    return (int)bytes;
}

/* Bucket elements [lo, hi) of the buffer; `last`: the extras ride with it. */
static void bucket_init(bucket *b, const rt_rank_sum *s, int64_t lo, int64_t hi, int last) {
    size_t esize = rt_elem_size(s->f64);
    size_t total = s->extras_at + (size_t)s->n_extra * sizeof(double);
    b->first = rt_alloc_array((size_t)ranks + 1, sizeof *b->first);
    b->at = rt_alloc_array((size_t)ranks, sizeof *b->at);
    b->bytes = rt_alloc_array((size_t)ranks, sizeof *b->bytes);
    /* Slices start at multiples of 16 elements from the bucket's start. */
    for (int j = 0; j < ranks; j++) b->first[j] = lo + (hi - lo) * j / ranks / 16 * 16;
    b->first[ranks] = hi;
    for (int j = 0; j < ranks; j++) {
        size_t begin = (size_t)b->first[j] * esize;
        size_t end = j < ranks - 1 ? (size_t)b->first[j + 1] * esize
                     : last        ? total
                                   : (size_t)hi * esize;
        b->at[j] = byte_count(begin);
        b->bytes[j] = byte_count(end - begin);
    }
    /* Each piece on 64 bytes, so that the sum reads aligned elements (the extras, at the
     * distance from the slice's start they have in the buffer, may not be aligned). */
    int mine = b->bytes[rank];
    size_t stride = ((size_t)mine + 63) / 64 * 64;
    b->from = rt_alloc_array((size_t)ranks, sizeof *b->from);
    b->from_at = rt_alloc_array((size_t)ranks, sizeof *b->from_at);
    b->pieces = rt_alloc_aligned((size_t)ranks * stride + 1, 1);
    for (int i = 0; i < ranks; i++) {
        b->from[i] = mine;
        b->from_at[i] = byte_count((size_t)i * stride);
    }
    b->scatter = b->gather = MPI_REQUEST_NULL;
}

rt_rank_sum *rt_rank_sum_new(const int64_t *bucket_ends, int n_buckets, int f64, int n_extra) {
    rt_rank_sum *s = rt_alloc(sizeof *s);
    size_t esize = rt_elem_size(f64);
    int64_t n = n_buckets > 0 ? bucket_ends[n_buckets - 1] : 0;
    s->f64 = f64;
    s->n_extra = n_extra;
    s->extras_at = ((size_t)n * esize + 7) / 8 * 8;
    s->buf = rt_alloc_aligned(s->extras_at + (size_t)n_extra * sizeof(double) + 1, 1);
    s->n_buckets = n_buckets > 0 ? n_buckets : 1;
    s->buckets = rt_alloc_array((size_t)s->n_buckets, sizeof *s->buckets);
    for (int b = 0; b < s->n_buckets; b++) {
        int64_t lo = b > 0 ? bucket_ends[b - 1] : 0, hi = n_buckets > 0 ? bucket_ends[b] : 0;
        bucket_init(&s->buckets[b], s, lo, hi, b == s->n_buckets - 1);
    }
    s->started = 0;
    return s;
}

void *rt_rank_sum_elems(rt_rank_sum *s) {
    return s->buf;
}

double *rt_rank_sum_extras(rt_rank_sum *s) {
    return (double *)(void *)(s->buf + s->extras_at);
}

/* dst[e] = piece 0 + piece 1 + ... in rank order, for count values of type T that start
 * `skip` bytes into each rank's piece of `pieces` (`stride` bytes apart). */
#define SUM_IN_RANK_ORDER(T, dst, pieces, stride, skip, count)                                     \
    do {                                                                                           \
        T *out_ = (T *)(void *)(dst);                                                              \
        for (int64_t e_ = 0; e_ < (count); e_++) {                                                 \
            T acc_ = ((const T *)(const void *)((pieces) + (skip)))[e_];                           \
            for (int i_ = 1; i_ < ranks; i_++)                                                     \
                acc_ +=                                                                            \
                    ((const T *)(const void *)((pieces) + (size_t)i_ * (stride) + (skip)))[e_];    \
            out_[e_] = acc_;                                                                       \
        }                                                                                          \
    } while (0)

/* My slice of bucket b: its elements in the model's type, and for the last rank of the
 * last bucket the extras. */
static void sum_my_slice(rt_rank_sum *s, int b) {
    const bucket *bk = &s->buckets[b];
    int64_t count = bk->first[rank + 1] - bk->first[rank];
    char *dst = s->buf + bk->at[rank];
    size_t stride = ranks > 1 ? (size_t)bk->from_at[1] : 0;
    if (s->f64)
        SUM_IN_RANK_ORDER(double, dst, bk->pieces, stride, 0, count);
    else
        SUM_IN_RANK_ORDER(float, dst, bk->pieces, stride, 0, count);
    if (rank != ranks - 1 || b != s->n_buckets - 1) return;
    size_t skip = s->extras_at - (size_t)bk->at[rank];
    for (int e = 0; e < s->n_extra; e++) {
        double acc = 0, x;
        for (int i = 0; i < ranks; i++) {
            memcpy(&x, bk->pieces + (size_t)i * stride + skip + (size_t)e * sizeof x, sizeof x);
            acc = i == 0 ? x : acc + x;
        }
        memcpy(s->buf + s->extras_at + (size_t)e * sizeof acc, &acc, sizeof acc);
    }
}

/* Lets MPI move what is under way: a non-blocking collective advances only inside MPI. */
static void progress(rt_rank_sum *s) {
    for (int b = 0; b < s->started; b++) {
        int done;
        MPI_Test(&s->buckets[b].scatter, &done, MPI_STATUS_IGNORE);
    }
}

void rt_rank_sum_start(rt_rank_sum *s, int b) {
    if (ranks == 1 || b != s->started) return; /* in order, each once a round */
    bucket *bk = &s->buckets[b];
    MPI_Ialltoallv(s->buf, bk->bytes, bk->at, MPI_BYTE, bk->pieces, bk->from, bk->from_at, MPI_BYTE,
                   MPI_COMM_WORLD, &bk->scatter);
    s->started++;
    progress(s);
}

void rt_rank_sum_progress(rt_rank_sum *s) {
    if (ranks > 1) progress(s);
}

void rt_rank_sum_all(rt_rank_sum *s) {
    if (ranks == 1) return;
    while (s->started < s->n_buckets) rt_rank_sum_start(s, s->started);
    /* Rank j gets slice j of every rank's bucket, adds them up, and everybody gathers. */
    for (int b = 0; b < s->n_buckets; b++) {
        bucket *bk = &s->buckets[b];
        MPI_Wait(&bk->scatter, MPI_STATUS_IGNORE);
        sum_my_slice(s, b);
        MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_BYTE, s->buf, bk->bytes, bk->at, MPI_BYTE,
                        MPI_COMM_WORLD, &bk->gather);
    }
    for (int b = 0; b < s->n_buckets; b++) MPI_Wait(&s->buckets[b].gather, MPI_STATUS_IGNORE);
    s->started = 0;
}

void rt_rank_sum_free(rt_rank_sum *s) {
    if (!s) return;
    for (int b = 0; b < s->n_buckets; b++) {
        bucket *bk = &s->buckets[b];
        rt_free(bk->first);
        rt_free(bk->at);
        rt_free(bk->bytes);
        rt_free(bk->from);
        rt_free(bk->from_at);
        rt_free(bk->pieces);
    }
    rt_free(s->buckets);
    rt_free(s->buf);
    rt_free(s);
}
