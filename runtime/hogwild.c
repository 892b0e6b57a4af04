/* hogwild.c: HOGWILD! (see hogwild.h). The threads of an epoch are made and joined by the
 * epoch: between two joins nothing synchronises them but atomics: a stop flag, each thread's
 * count of rows done (for the progress bar), and, under --steps, the run's step count, which
 * the threads claim steps from. Everything else a thread writes is its own (its ctx's arenas,
 * its shard, its generators, its metrics), except THE params, which every thread's sgd_step
 * reads and writes without a lock: the race the algorithm is made of. Each atomic a thread
 * writes at every step has a cache line of its own, so that with small steps (a sparse model,
 * batch 1) the threads do not wait on each other's writes of counters. */
#include "hogwild.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "rng.h"
#include "util.h"

/* Thread 0 sums the rows done for the progress bar every this many of its steps: reading the
 * other threads' counters moves their cache lines. */
#define TICK_EVERY 64

/* ---- ThreadSanitizer ----
 *
 * The generated code and OpenBLAS are not instrumented, so TSan cannot see the params being
 * read and written by the threads' sgd_steps. In a TSan build each step tells it (a read of
 * every param before the step, a write after): the intended race becomes visible, in
 * mirror_param_access alone, which tests/tsan/hogwild.supp suppresses by that name. Any
 * other report is a race nobody meant. */
#if defined(__SANITIZE_THREAD__)
#define RT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RT_TSAN 1
#endif
#endif

#ifdef RT_TSAN
void __tsan_read_range(void *addr, unsigned long size);
void __tsan_write_range(void *addr, unsigned long size);

static void __attribute__((noinline))
mirror_param_access(const nnrt_model *m, void *params, int write) {
    size_t esize = rt_elem_size(m->f64);
    for (int32_t i = 0; i < m->n_params; i++) {
        void *p = rt_elem_ptr(params, m->params[i].offset, m->f64);
        unsigned long bytes = (unsigned long)((size_t)m->params[i].numel * esize);
        if (write)
            __tsan_write_range(p, bytes);
        else
            __tsan_read_range(p, bytes);
    }
}
#else
static void mirror_param_access(const nnrt_model *m, void *params, int write) {
    (void)m, (void)params, (void)write;
}
#endif

/* ---- the threads ---- */

typedef struct worker {
    struct rt_hogwild *h;
    int index;
    nnrt_ctx ctx;       /* thread 0: the run's own; others: rt_new_sharing_ctx */
    int64_t *shard;     /* its rows, reshuffled every epoch */
    int64_t shard_rows; /* at least 1 */
    rt_rng shuffle_rng, noise_rng;
    rt_metrics metrics; /* this epoch's */
    int64_t steps;      /* this epoch's */
    double bad_cost;
    pthread_t thread;
    /* rows of its shard done this epoch: written by this thread, read by thread 0 */
    _Alignas(RT_CACHE_LINE) _Atomic int64_t rows_done;
} worker;

struct rt_hogwild {
    const nnrt_model *m;
    const rt_options *o;
    const rt_dataset *train;
    void *params; /* the master fixed arena */
    int64_t batch, n_rows;
    int n;
    worker *workers;
    int64_t *order; /* the shards, back to back */
    /* this epoch's */
    rt_hogwild_epoch *epoch;
    /* with a step limit: every thread's steps, the run's step count */
    _Alignas(RT_CACHE_LINE) _Atomic int64_t claimed;
    /* an enum rt_hogwild_end other than DONE; DONE: go on. Written once, read at every step */
    _Alignas(RT_CACHE_LINE) _Atomic int stop;
};

void rt_hogwild_check(const rt_options *o, int64_t n_train) {
    int64_t n = o->hogwild;
    const char *optimizer = o->optimizer ? o->optimizer : "sgd";
    if (strcmp(optimizer, "sgd") != 0)
        rt_usage_error("--hogwild runs the model's fused sgd step in each thread, lock-free; "
                       "%s %s needs each step's whole gradient before its update, which no "
                       "thread holds: %s --optimizer sgd (with --momentum if you like)",
                       o->optimizer_given ? "--optimizer" : "the train block's optimizer",
                       optimizer, o->optimizer_given ? "use" : "give");
    if (o->nesterov && o->momentum > 0)
        rt_usage_error("--hogwild: Nesterov momentum needs each step's whole gradient before its "
                       "update, which the fused lock-free step never holds: use --nesterov off");
    if ((o->l1 && *o->l1) || (o->l2 && *o->l2))
        rt_usage_error("--hogwild: a penalty (--l1, --l2) is added to the whole gradient before "
                       "the update, which the fused lock-free step never holds");
    if (o->clip > 0)
        rt_usage_error("--hogwild: --clip scales the whole gradient by its norm before the "
                       "update, which the fused lock-free step never holds: use --clip 0");
    if (o->freeze && *o->freeze)
        rt_usage_error("--freeze cannot be honoured with --hogwild: its threads run the model's "
                       "fused sgd step, which updates every param; train without --hogwild");
    if (o->trace)
        rt_usage_error("--hogwild: --trace writes the params after every step, and HOGWILD!'s "
                       "threads change them at any time: trace a run without --hogwild");
    if (o->log_grad_norms)
        rt_usage_error("--hogwild: --log-grad-norms measures the gradient of the epoch's last "
                       "step, and HOGWILD! has a last step in every thread");
    if (o->log_update_ratios)
        rt_usage_error("--hogwild: --log-update-ratios measures the update of the epoch's last "
                       "step, and HOGWILD! has a last step in every thread");
    if (n > 1 && o->threads != 1)
        rt_usage_error("--hogwild %lld runs %lld threads of its own: OpenBLAS's threads "
                       "(--threads %lld) would fight them for the cores; give --threads 1",
                       (long long)n, (long long)n, (long long)o->threads);
    if (n > n_train)
        rt_usage_error("--hogwild %lld: more threads than the %lld training rows (a thread "
                       "needs a shard of at least one row)",
                       (long long)n, (long long)n_train);
}

rt_hogwild *rt_hogwild_new(const nnrt_model *m, const rt_options *o, nnrt_ctx *master,
                           const rt_dataset *train, const int64_t *rows, int64_t n_rows,
                           int64_t batch) {
    rt_hogwild_check(o, n_rows);
    rt_hogwild *h = rt_alloc_aligned(1, sizeof *h);
    h->m = m;
    h->o = o;
    h->train = train;
    h->params = master->fixed;
    h->batch = batch;
    h->n_rows = n_rows;
    h->n = (int)o->hogwild;
    h->order = rt_alloc_array((size_t)n_rows, sizeof *h->order);
    memcpy(h->order, rows, (size_t)n_rows * sizeof *h->order);
    if (o->shuffle) { /* the permutation of the run's first epoch (train.c), cut into shards */
        rt_rng rng;
        rt_rng_seed(&rng, o->seed, RT_STREAM_SHUFFLE);
        rt_rng_shuffle(&rng, h->order, n_rows);
    }
    h->workers = rt_alloc_aligned((size_t)h->n, sizeof *h->workers);
    int64_t at = 0;
    for (int i = 0; i < h->n; i++) {
        worker *w = &h->workers[i];
        w->h = h;
        w->index = i;
        w->shard = h->order + at;
        w->shard_rows = n_rows / h->n + (i < n_rows % h->n);
        at += w->shard_rows;
        w->ctx = i == 0 ? *master : rt_new_sharing_ctx(m, master->fixed, batch);
        w->ctx.dropout_keep = master->dropout_keep; /* --dropout */
    }
    return h;
}

void rt_hogwild_free(rt_hogwild *h) {
    if (!h) return;
    for (int i = 1; i < h->n; i++) rt_free_sharing_ctx(&h->workers[i].ctx);
    rt_free(h->workers);
    rt_free(h->order);
    rt_free(h);
}

/* Claims the next step of the run, unless the step limit (--steps) is reached; without one
 * each thread counts its own steps and nothing is shared. */
static int claim_step(rt_hogwild *h, worker *w) {
    int64_t limit = h->epoch->step_limit;
    if (limit > 0) {
        int64_t s = atomic_load_explicit(&h->claimed, memory_order_relaxed);
        do
            if (s >= limit) return 0;
        while (!atomic_compare_exchange_weak_explicit(&h->claimed, &s, s + 1, memory_order_relaxed,
                                                      memory_order_relaxed));
    }
    w->steps++;
    return 1;
}

/* Stops every thread after its current step; the first reason given wins. */
static void stop_all(rt_hogwild *h, enum rt_hogwild_end why) {
    int running = RT_HOGWILD_DONE;
    atomic_compare_exchange_strong(&h->stop, &running, (int)why);
}

/* One lock-free step on rows[0..count): the thread's own batch and noise, the shared params.
 * Thread 0's steps write the states (running statistics); the others' leave them alone, so
 * they have one writer. Returns 0 when the loss was not finite. */
static int step(worker *w, const int64_t *rows, int64_t count) {
    rt_hogwild *h = w->h;
    const nnrt_model *m = h->m;
    rt_fill_batch(m, &w->ctx, h->train, rows, 0, count, 1);
    w->ctx.training = w->index == 0 ? NNRT_TRAINING_STEP : NNRT_TRAINING;
    w->ctx.noise_seed = rt_rng_next(&w->noise_rng);
    mirror_param_access(m, h->params, 0);
    m->sgd_step(&w->ctx, h->epoch->lr, h->o->momentum);
    mirror_param_access(m, h->params, 1);
    w->ctx.training = NNRT_INFERENCE;
    /* The batch's cost and the epoch's metrics in one pass over the losses; after a step
     * that is not finite the run fails and its metrics are not read. */
    double cost = rt_add_batch_metrics(m, &w->ctx, h->train, rows, 0, &w->metrics);
    if (!isfinite(cost)) {
        w->bad_cost = cost;
        return 0;
    }
    return 1;
}

static int64_t rows_done(rt_hogwild *h) {
    int64_t n = 0;
    for (int i = 0; i < h->n; i++)
        n += atomic_load_explicit(&h->workers[i].rows_done, memory_order_relaxed);
    return n;
}

/* Thread 0 is the main thread: it alone sees SIGINT (the others block it) and draws the
 * progress bar. */
static void thread0_between_steps(rt_hogwild *h, worker *w) {
    rt_hogwild_epoch *e = h->epoch;
    if (e->interrupted && *e->interrupted) stop_all(h, RT_HOGWILD_INTERRUPTED);
    if (e->tick && w->steps % TICK_EVERY == 0) e->tick(e->tick_arg, rows_done(h), w->metrics);
}

static void *run_shard(void *arg) {
    worker *w = arg;
    rt_hogwild *h = w->h;
    for (int64_t at = 0; at < w->shard_rows;) {
        if (atomic_load_explicit(&h->stop, memory_order_relaxed) != RT_HOGWILD_DONE) break;
        if (!claim_step(h, w)) break;
        int64_t count = w->shard_rows - at < h->batch ? w->shard_rows - at : h->batch;
        if (!step(w, w->shard + at, count)) {
            stop_all(h, RT_HOGWILD_FAULT);
            break;
        }
        at += count;
        atomic_store_explicit(&w->rows_done, at, memory_order_relaxed);
        if (w->index == 0) thread0_between_steps(h, w);
    }
    return NULL;
}

/* Each thread's generators for this epoch: from the seed, the thread and the epoch alone, so
 * a resumed run draws what it would have drawn (rows and noise, not the interleaving). */
static void start_epoch(worker *w, int64_t epoch) {
    const rt_options *o = w->h->o;
    uint64_t part = (uint64_t)epoch * RT_MAX_HOGWILD + (uint64_t)w->index;
    rt_rng_seed_part(&w->shuffle_rng, o->seed, RT_STREAM_HOGWILD_SHUFFLE, part);
    rt_rng_seed_part(&w->noise_rng, o->seed, RT_STREAM_HOGWILD_NOISE, part);
    if (o->shuffle) rt_rng_shuffle(&w->shuffle_rng, w->shard, w->shard_rows);
    memset(&w->metrics, 0, sizeof w->metrics);
    w->steps = 0;
    w->bad_cost = 0;
    atomic_store(&w->rows_done, 0);
}

/* Starts threads 1.. with SIGINT blocked (they inherit the mask), so that Ctrl-C's handler
 * runs on the main thread, thread 0, which reads the flag it sets. */
static void start_threads(rt_hogwild *h) {
    for (int i = 1; i < h->n; i++)
        rt_start_thread(&h->workers[i].thread, run_shard, &h->workers[i], "--hogwild");
}

enum rt_hogwild_end rt_hogwild_run_epoch(rt_hogwild *h, rt_hogwild_epoch *e) {
    h->epoch = e;
    atomic_store(&h->claimed, e->steps);
    atomic_store(&h->stop, RT_HOGWILD_DONE);
    for (int i = 0; i < h->n; i++) start_epoch(&h->workers[i], e->epoch);
    start_threads(h);
    run_shard(&h->workers[0]);
    for (int i = 1; i < h->n; i++) pthread_join(h->workers[i].thread, NULL);
    memset(&e->metrics, 0, sizeof e->metrics);
    e->bad_cost = 0;
    e->rows_done = rows_done(h);
    for (int i = 0; i < h->n; i++) {
        const worker *w = &h->workers[i];
        e->steps += w->steps;
        rt_add_metrics(&e->metrics, w->metrics);
        if (!isfinite(w->bad_cost) && isfinite(e->bad_cost)) e->bad_cost = w->bad_cost;
    }
    h->epoch = NULL;
    return (enum rt_hogwild_end)atomic_load(&h->stop);
}
