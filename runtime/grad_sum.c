/* grad_sum.c: see grad_sum.h. The buckets follow the order of grad()'s hook points, which
 * the compiler numbers in the schedule's order (compiler/plan.c, number_grad_points): in
 * an MLP the last layer's gradients come first. A bucket closes at a hook point once it
 * holds bucket_bytes; what is left, the gradients finished only at grad()'s return and the
 * states, make the last bucket with the extras. Every rank builds the same buckets from
 * the same model and NNRT_MPI_BUCKET (train_ranks.c checks that they agree), so their
 * non-blocking collectives pair up in the same order. */
#include "grad_sum.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"
#include "util.h"

struct rt_grad_sum {
    nnrt_grads_listener listener; /* first: nnrt_grads_done hands it back */
    const nnrt_model *m;
    rt_rank_sum *sum;
    int32_t *order; /* the params with a gradient, in the buffer's order */
    int64_t *at;    /* each one's first element in the buffer */
    int32_t n_order;
    int *order_end; /* a bucket's params end at order[order_end[b]] */
    int *point;     /* the hook point that completes bucket b; INT_MAX for the last */
    int n_buckets;
    int64_t states_at;
    /* this step */
    void *fixed;
    double weight, state_weight;
    int next;  /* the first bucket not moved in yet */
    int early; /* buckets the listener started */
};

int64_t rt_mpi_bucket_bytes(void) {
    const char *v = getenv("NNRT_MPI_BUCKET");
    if (!v || !*v) return RT_MPI_BUCKET_BYTES;
    char *end;
    long long bytes = strtoll(v, &end, 10);
    if (*end || bytes < 0 || v[0] == '-' || v[0] == '+')
        rt_usage_error("NNRT_MPI_BUCKET=%s: give a number of bytes (0: one bucket, after "
                       "grad()), or leave it unset (%d)",
                       v, RT_MPI_BUCKET_BYTES);
    return bytes;
}

/* The hook point a gradient waits for: grad()'s return (INT_MAX) when grad_point is 0. */
static int ready_at(const nnrt_tensor *t) {
    return t->grad_point > 0 ? t->grad_point : INT_MAX;
}

static int by_point(const nnrt_model *m, int32_t a, int32_t b) {
    int pa = ready_at(&m->params[a]), pb = ready_at(&m->params[b]);
    return pa != pb ? (pa < pb ? -1 : 1) : (a < b ? -1 : a > b);
}

/* The params with a gradient, by hook point, then by index: an insertion sort, since the
 * compiler's order is nearly this one (often its reverse, which costs n^2 / 2 compares of
 * a few hundred params at most, once). */
static void sort_by_point(rt_grad_sum *s) {
    const nnrt_model *m = s->m;
    for (int32_t i = 0; i < m->n_params; i++) {
        if (m->params[i].grad_offset < 0) continue;
        int32_t k = s->n_order++;
        while (k > 0 && by_point(m, s->order[k - 1], i) > 0) {
            s->order[k] = s->order[k - 1];
            k--;
        }
        s->order[k] = i;
    }
}

/* Buckets of at least `cap` bytes, each ending where a hook point ends; the last takes
 * the rest and the states. Returns the buckets' element ends, for rt_rank_sum_new. */
static int64_t *cut_buckets(rt_grad_sum *s, int64_t cap) {
    const nnrt_model *m = s->m;
    size_t esize = rt_elem_size(m->f64);
    int64_t *ends = rt_alloc_array((size_t)s->n_order + 1, sizeof *ends);
    int64_t elems = 0, bytes = 0;
    for (int32_t k = 0; k < s->n_order; k++) {
        const nnrt_tensor *t = &m->params[s->order[k]];
        s->at[k] = elems;
        elems += t->numel;
        bytes += t->numel * (int64_t)esize;
        int point = ready_at(t);
        int point_ends = k + 1 == s->n_order || ready_at(&m->params[s->order[k + 1]]) != point;
        if (cap > 0 && bytes >= cap && point != INT_MAX && point_ends) {
            s->order_end[s->n_buckets] = k + 1;
            s->point[s->n_buckets] = point;
            ends[s->n_buckets++] = elems;
            bytes = 0;
        }
    }
    s->states_at = elems;
    for (int32_t i = 0; i < m->n_states; i++) elems += m->states[i].numel;
    s->order_end[s->n_buckets] = s->n_order;
    s->point[s->n_buckets] = INT_MAX;
    ends[s->n_buckets++] = elems;
    return ends;
}

/* n elements between the arena and the buffer: in, scaled by weight (exact for weight 1
 * and 0); out, copied back. */
static void move_elems(void *arena, void *buffer, int64_t n, int f64, int in, double weight) {
    if (!in) {
        memcpy(arena, buffer, (size_t)n * rt_elem_size(f64));
    } else if (f64) {
        const double *from = arena;
        double *to = buffer;
        for (int64_t e = 0; e < n; e++) to[e] = from[e] * weight;
    } else {
        const float *from = arena;
        float *to = buffer;
        float w = (float)weight;
        for (int64_t e = 0; e < n; e++) to[e] = from[e] * w;
    }
}

/* Bucket b's gradients (and, in the last, the states) into the buffer, or back out. */
static void move_bucket(rt_grad_sum *s, int b, int in) {
    const nnrt_model *m = s->m;
    int f64 = m->f64;
    void *buf = rt_rank_sum_elems(s->sum);
    for (int k = b > 0 ? s->order_end[b - 1] : 0; k < s->order_end[b]; k++) {
        const nnrt_tensor *t = &m->params[s->order[k]];
        move_elems(rt_elem_ptr(s->fixed, t->grad_offset, f64), rt_elem_ptr(buf, s->at[k], f64),
                   t->numel, f64, in, s->weight);
    }
    if (b < s->n_buckets - 1) return;
    int64_t at = s->states_at;
    for (int32_t i = 0; i < m->n_states; i++) {
        const nnrt_tensor *t = &m->states[i];
        move_elems(rt_elem_ptr(s->fixed, t->offset, f64), rt_elem_ptr(buf, at, f64), t->numel, f64,
                   in, s->state_weight);
        at += t->numel;
    }
}

/* grad() has finished every gradient of hook points up to `point`: the buckets they
 * complete go in and start; otherwise MPI moves what is under way. */
static void grads_done(nnrt_grads_listener *l, int32_t point) {
    rt_grad_sum *s = (rt_grad_sum *)(void *)l;
    int started = 0;
    while (s->next < s->n_buckets - 1 && s->point[s->next] <= point) {
        move_bucket(s, s->next, 1);
        rt_rank_sum_start(s->sum, s->next++);
        s->early++;
        started = 1;
    }
    if (!started) rt_rank_sum_progress(s->sum);
}

rt_grad_sum *rt_grad_sum_new(const nnrt_model *m, int64_t bucket_bytes, int n_extra) {
    rt_grad_sum *s = rt_alloc(sizeof *s);
    s->listener.done = grads_done;
    s->m = m;
    size_t n = (size_t)m->n_params + 1;
    s->order = rt_alloc_array(n, sizeof *s->order);
    s->at = rt_alloc_array(n, sizeof *s->at);
    s->order_end = rt_alloc_array(n, sizeof *s->order_end);
    s->point = rt_alloc_array(n, sizeof *s->point);
    sort_by_point(s);
    int64_t *ends = cut_buckets(s, bucket_bytes);
    s->sum = rt_rank_sum_new(ends, s->n_buckets, m->f64, n_extra);
    rt_free(ends);
    return s;
}

int rt_grad_sum_buckets(const rt_grad_sum *s) {
    return s->n_buckets;
}

int rt_grad_sum_early(const rt_grad_sum *s) {
    return s->early;
}

void *rt_grad_sum_begin(rt_grad_sum *s, void *fixed, double weight, double state_weight) {
    s->fixed = fixed;
    s->weight = weight;
    s->state_weight = state_weight;
    s->next = 0;
    s->early = 0;
    return &s->listener;
}

double *rt_grad_sum_extras(rt_grad_sum *s) {
    return rt_rank_sum_extras(s->sum);
}

void rt_grad_sum_finish(rt_grad_sum *s) {
    for (; s->next < s->n_buckets; s->next++) move_bucket(s, s->next, 1);
    rt_rank_sum_all(s->sum);
    for (int b = 0; b < s->n_buckets; b++) move_bucket(s, b, 0);
}

void rt_grad_sum_free(rt_grad_sum *s) {
    if (!s) return;
    rt_rank_sum_free(s->sum);
    rt_free(s->order);
    rt_free(s->at);
    rt_free(s->order_end);
    rt_free(s->point);
    rt_free(s);
}
