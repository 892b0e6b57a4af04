/* solo.c: ranks.h for a runtime built without MPI: one process, rank 0 of 1. A sum over one
 * rank is the buffer itself. */
#include "ranks.h"

#include "util.h"

int rt_ranks_start(void) {
    int launched = rt_launched_ranks();
    if (launched > 1)
        rt_usage_error("started by mpirun as one of %d ranks, but this program was compiled "
                       "without MPI: each rank would train alone; compile it with nnc --mpi",
                       launched);
    return 1;
}

void rt_ranks_print_help(FILE *out, const char *prog) {
    (void)out;
    (void)prog;
}

int rt_rank(void) {
    return 0;
}

int rt_ranks(void) {
    return 1;
}

void rt_ranks_gather(const int64_t *mine, int n, int64_t *all) {
    for (int i = 0; i < n; i++) all[i] = mine[i];
}

/* One process shares memory with nobody. */
rt_rank_window *rt_rank_window_new(size_t bytes) {
    (void)bytes;
    return NULL;
}

void *rt_rank_window_segment(rt_rank_window *w, int rank) {
    (void)w;
    (void)rank;
    rt_fatal("internal error: no window of shared memory in one process");
}

void rt_rank_window_barrier(rt_rank_window *w) {
    (void)w;
}

void rt_rank_window_free(rt_rank_window *w) {
    (void)w;
}

struct rt_rank_sum {
    void *elems;
    double *extras;
};

rt_rank_sum *rt_rank_sum_new(const int64_t *bucket_ends, int n_buckets, int f64, int n_extra) {
    int64_t n = n_buckets > 0 ? bucket_ends[n_buckets - 1] : 0;
    rt_rank_sum *s = rt_alloc(sizeof *s);
    s->elems = rt_alloc_array((size_t)n + 1, rt_elem_size(f64));
    s->extras = rt_alloc_array((size_t)n_extra + 1, sizeof(double));
    return s;
}

void *rt_rank_sum_elems(rt_rank_sum *s) {
    return s->elems;
}

double *rt_rank_sum_extras(rt_rank_sum *s) {
    return s->extras;
}

void rt_rank_sum_start(rt_rank_sum *s, int b) {
    (void)s;
    (void)b;
}

void rt_rank_sum_progress(rt_rank_sum *s) {
    (void)s;
}

void rt_rank_sum_all(rt_rank_sum *s) {
    (void)s;
}

void rt_rank_sum_free(rt_rank_sum *s) {
    if (!s) return;
    rt_free(s->elems);
    rt_free(s->extras);
    rt_free(s);
}
