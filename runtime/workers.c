/* workers.c: synchronous data-parallel training on threads (see workers.h).
 *
 * Two ways to split a step. The team's step (below: a model that has sgd_step_team and
 * grad_team) splits the work of each step of the compiled plan. The batch split, for
 * every other model, is three phases of N tasks each, the k-th task of each phase being
 * share k's or part k's whichever thread runs it:
 *   GRAD    gather share k's rows into ctx k and run grad() on them;
 *   COMBINE on part k of the elements: the master gradient = sum over shares j, in order, of
 *           (rows_j / count) * gradient_j; the optimizer's penalties and non-finite check,
 *           the part's sum of squares (for clipping), and without clipping the update;
 *   UPDATE  (with --clip) the update of part k, scaled by the global norm, which every
 *           task reads from all parts' sums in order, so all decide alike.
 * Each phase starts once the one before has all its tasks done. A thread claims a task by
 * a compare-and-swap of the task's last claimed step, its own task (thread k: task k) first
 * and then any other still unclaimed: on a machine with more busy threads than cores a
 * worker that is not running does not hold the step up, the others do its share. The
 * arithmetic of a task does not depend on the thread that runs it, so the results do not
 * either. Worker 0 (the calling thread) publishes a step by bumping `started` and returns
 * when the last phase is done; the other threads go back to waiting for the next step.
 * A step of a small model lasts 50-150 us, and waking a sleeping thread costs tens of us, so
 * waits spin (on counters, no lock) for up to SPIN_SECONDS and only then sleep on a
 * condition variable: a step never sleeps, an idle team (validation, the end of an epoch)
 * does not burn a core. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT (rt_usable_cpus) */
#endif
#include "workers.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "in_place_gemm.h"
#include "lines_ahead.h"
#include "packed_gemm.h"
#include "util.h"

/* Longer than the gap between two steps (the update's end, metrics, progress), much shorter
 * than an epoch's validation. */
#define SPIN_SECONDS 0.0005
/* Turns of the spin loop that only pause (some microseconds) before it starts yielding. */
#define YIELD_AFTER 4096

/* Parts of the elements start on a multiple of this (64 bytes of f32), so that two
 * workers never write one cache line. */
#define PART_ALIGN 16

/* Blocks a thread's share of a team's GEMM is cut into (but for a W in column blocks, one
 * block a thread): the cores of a virtual machine need not run at one speed (on a Zen 5
 * here, the second vCPU ran W2's step 15% slower than the first), and a thread done with its
 * own takes the other's last block rather than wait. */
#define PIECES 2

/* The team's step asks for the next batch's rows when they are at most this many bytes of
 * inputs (nnrt_team_solo). */
#define AHEAD_MAX_BYTES (128 * 1024)

/* Elements a worker combines, prepares and updates at a time: 8 KB of f32, 16 KB of f64,
 * which stay in the L1 cache between the passes over them. */
#define CHUNK 2048

enum phase { GRAD, COMBINE, UPDATE, N_PHASES };

/* How the threads split a step: the batch (the three phases above), or the compiled plan's
 * steps (the team's step, below) of sgd_step_team, or of grad_team followed by COMBINE's
 * and UPDATE's update of the parts (with nothing to combine). */
enum split { SPLIT_BATCH, SPLIT_SGD_STEP, SPLIT_GRAD };

/* Share k of the batch and part k of the update's elements. */
typedef struct worker {
    _Alignas(RT_CACHE_LINE) struct rt_workers *team; /* a cache line of its own for each worker */
    int index;
    nnrt_ctx ctx;   /* share k's arenas: the master's for share 0 */
    rt_share share; /* of the current step */
    int64_t lo, hi; /* the part of the update's elements */
    double sum_sq;  /* COMBINE's outcome */
    int32_t bad_gradient;
    int32_t bad_value;
    /* the team's step: the one this thread runs, its phases and tasks so far in it */
    uint64_t team_step;
    uint64_t listed_step; /* the last team step in which it ran a block of an X·W */
    uint32_t phases, tasks;
    int ask_ahead;        /* the step's first solo phase asks for the next batch's rows */
    uint64_t ahead_phase; /* that phase, once begun */
    _Atomic uint64_t claimed[N_PHASES]; /* the last step whose task of each phase was taken */
    _Atomic int copying;                /* the team's step: thread k is copying worker 0's ctx */
    nnrt_ctx own_inputs; /* the team's step, thread k >= 1: its own copy of the batch's inputs */
    void *own_c;         /* the team's step: a block of a product's columns, then copied out */
    size_t own_c_bytes;
    pthread_t thread; /* thread k (k >= 1), which prefers task k */
} worker;

struct rt_workers {
    const nnrt_model *m;
    rt_optim *op;
    int global_norm; /* the update needs every part's gradient first (--clip) */
    enum split split;
    double lr, momentum;
    int n;
    worker *w;
    /* the current step, written by worker 0 before it bumps `started` */
    uint64_t step;
    const rt_dataset *d;
    const int64_t *rows;
    int64_t count, ahead; /* rows[count .. count + ahead): the next step's */
    int ask_ahead;        /* the team's step: nnrt_team_solo asks for those rows */
    uint64_t noise_seed;
    _Atomic int stopping; /* read by threads that may be between steps */
    /* Each counter on a cache line of its own: threads spin on them. */
    _Alignas(RT_CACHE_LINE) _Atomic uint64_t started;        /* steps started (one more to stop) */
    _Alignas(RT_CACHE_LINE) _Atomic uint64_t done[N_PHASES]; /* tasks done, n a step */
    /* the team's step: its number, and (number << 32) + its tasks done */
    _Alignas(RT_CACHE_LINE) _Atomic uint64_t team_step;
    _Alignas(RT_CACHE_LINE) _Atomic uint64_t team_done;
    /* 1 while the threads may copy worker 0's ctx (from a team step's start to its end) */
    _Alignas(RT_CACHE_LINE) _Atomic int ctx_open;
    _Alignas(RT_CACHE_LINE) _Atomic int sleepers; /* threads asleep (or about to) in wait_until */
    struct claim *claims;              /* the team's step: the last phase whose piece p was taken */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* the team's step: the params it keeps in column blocks (below) */
    int probing;         /* the first team step records how its GEMMs use the params */
    _Atomic int blocked; /* the chosen params are in column blocks now */
    int32_t n_matrices;  /* the params of rank 2 */
    struct matrix *matrices;
    void *scratch; /* the largest chosen param's bytes */
};

/* ---- waiting ---- */

/* Spins until *counter reaches target, or sleeps once SPIN_SECONDS have gone by. Past the
 * first YIELD_AFTER turns the spin yields the core at each turn: on a machine with more
 * threads than cores the worker being waited for may be the one that needs it. A sleeper
 * announces itself in `sleepers` before it checks the counter a last time, and bump() reads
 * `sleepers` after it bumps: with sequentially consistent atomics either the sleeper sees
 * the bump or bump() sees the sleeper and wakes it under the lock. */
static void wait_until(rt_workers *t, _Atomic uint64_t *counter, uint64_t target) {
    double since = 0;
    for (uint32_t i = 1;; i++) {
        if (atomic_load_explicit(counter, memory_order_acquire) >= target) return;
        if (i < YIELD_AFTER) {
            rt_cpu_relax();
            continue;
        }
        sched_yield();
        if (i % 16 != 0) continue;
        if (since == 0)
            since = rt_now();
        else if (rt_now() - since > SPIN_SECONDS)
            break;
    }
    pthread_mutex_lock(&t->lock);
    atomic_fetch_add(&t->sleepers, 1);
    while (atomic_load(counter) < target) pthread_cond_wait(&t->wake, &t->lock);
    atomic_fetch_sub(&t->sleepers, 1);
    pthread_mutex_unlock(&t->lock);
}

static void bump(rt_workers *t, _Atomic uint64_t *counter) {
    atomic_fetch_add(counter, 1);
    if (atomic_load(&t->sleepers) == 0) return;
    pthread_mutex_lock(&t->lock);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

/* A task of `step`: taken by the first thread whose swap finds the step before it there.
 * A thread that wakes late, for a step already done, takes nothing. */
static int claim(worker *task, enum phase p, uint64_t step) {
    uint64_t before = step - 1;
    return atomic_compare_exchange_strong(&task->claimed[p], &before, step);
}

/* ---- shares and parts ---- */

rt_share rt_worker_share(int64_t count, int n, int k) {
    /* first_k = ceil(k * count / n) */
    int64_t first = (k * count + n - 1) / n, next = ((k + 1) * count + n - 1) / n;
    return (rt_share){first, next - first};
}

int64_t rt_workers_cap(int64_t batch, int n) {
    return rt_worker_share(batch, n, 0).rows;
}

/* Worker k's part of the update's elements: about an n-th, starting on PART_ALIGN. */
static int64_t part_start(int64_t elems, int n, int k) {
    if (k == 0) return 0;
    if (k == n) return elems;
    return elems * k / n / PART_ALIGN * PART_ALIGN;
}

/* ---- the phases ---- */

static void run_grad(worker *k) {
    rt_workers *t = k->team;
    k->share = rt_worker_share(t->count, t->n, k->index);
    if (k->share.rows == 0) return;
    rt_fill_batch(t->m, &k->ctx, t->d, t->rows + k->share.first, 0, k->share.rows, 1);
    rt_share next = rt_worker_share(t->ahead, t->n, k->index);
    rt_prefetch_batch_in_step(t->m, t->d, t->rows + t->count + next.first, next.rows);
    k->ctx.first_row = k->share.first;
    rt_ids_first_row(k->share.first);
    k->ctx.training = k->index == 0 ? NNRT_TRAINING_STEP : NNRT_TRAINING;
    k->ctx.noise_seed = t->noise_seed;
    t->m->grad(&k->ctx);
    rt_lines_ahead_rest();
    k->ctx.training = NNRT_INFERENCE;
}

/* dst = c * dst, or dst += c * src: the gradients in worker order, in the model's type. */
#define COMBINE(T, name)                                                                           \
    static void name(T *restrict dst, const T *restrict src, int64_t n, double c) {                \
        T k = (T)c;                                                                                \
        if (!src)                                                                                  \
            for (int64_t i = 0; i < n; i++) dst[i] *= k;                                           \
        else                                                                                       \
            for (int64_t i = 0; i < n; i++) dst[i] += k * src[i];                                  \
    }
COMBINE(float, combine_f32)
COMBINE(double, combine_f64)

/* Elements [first, first + n) of param p's gradient, combined over the workers that had
 * rows. Worker 0's gradient is the master's own (its ctx is over the master arena). */
static void combine_segment(rt_workers *t, const nnrt_tensor *p, int64_t first, int64_t n) {
    const nnrt_model *m = t->m;
    void *dst = rt_elem_ptr(t->w[0].ctx.fixed, p->grad_offset + first, m->f64);
    for (int j = 0; j < t->n; j++) {
        const worker *from = &t->w[j];
        if (from->share.rows == 0) continue;
        double c = (double)from->share.rows / (double)t->count;
        const void *src =
            j == 0 ? NULL : rt_elem_ptr(from->ctx.fixed, p->grad_offset + first, m->f64);
        if (m->f64)
            combine_f64(dst, src, n, c);
        else
            combine_f32(dst, src, n, c);
    }
}

/* Elements [lo, hi) of the update's: the params with a gradient, in order (rt_optim_elems). */
static void combine_range(rt_workers *t, int64_t lo, int64_t hi) {
    int64_t start = 0;
    for (int32_t i = 0; i < t->m->n_params && start < hi; i++) {
        const nnrt_tensor *p = &t->m->params[i];
        if (p->grad_offset < 0) continue;
        int64_t end = start + p->numel;
        int64_t a = lo > start ? lo : start, b = hi < end ? hi : end;
        if (a < b) combine_segment(t, p, a - start, b - a);
        start = end;
    }
}

/* Phase 3 (--clip): the update of the worker's part, a chunk at a time as phase 2 goes. It
 * stops at the first param whose gradient is not finite (the part's lowest), and notes the
 * first not finite after the update. */
static void update(worker *k, double scale) {
    rt_workers *t = k->team;
    k->bad_gradient = k->bad_value = -1;
    for (int64_t a = k->lo; a < k->hi && k->bad_gradient < 0; a += CHUNK) {
        int64_t b = a + CHUNK < k->hi ? a + CHUNK : k->hi;
        k->bad_gradient = rt_optim_update_part(t->op, a, b, scale, &k->bad_value);
    }
}

/* Phase 2 on the worker's part, a chunk at a time: each chunk is combined and prepared, and
 * when `then_update` updated, while it is in the L1 cache. The part's sum of squares is the
 * chunks' in order. */
static void combine_and_prepare(worker *k, int then_update) {
    rt_workers *t = k->team;
    k->sum_sq = 0;
    k->bad_gradient = k->bad_value = -1;
    for (int64_t a = k->lo; a < k->hi && k->bad_gradient < 0; a += CHUNK) {
        int64_t b = a + CHUNK < k->hi ? a + CHUNK : k->hi;
        if (t->split == SPLIT_BATCH) combine_range(t, a, b);
        k->sum_sq += rt_optim_prepare_part(t->op, a, b);
        if (then_update) k->bad_gradient = rt_optim_update_part(t->op, a, b, 1, &k->bad_value);
    }
}

/* The first failed param of the workers' outcomes (the lowest index, as one pass over the
 * params finds), or -1: of their gradients, or of their values after the update. */
static int32_t first_bad(const rt_workers *t, int gradient) {
    int32_t bad = -1;
    for (int j = 0; j < t->n; j++) {
        int32_t b = gradient ? t->w[j].bad_gradient : t->w[j].bad_value;
        if (b >= 0 && (bad < 0 || b < bad)) bad = b;
    }
    return bad;
}

/* The update of a part scaled by the global norm (--clip). */
static void clipped_update(worker *k) {
    rt_workers *t = k->team;
    double sum_sq = 0;
    for (int j = 0; j < t->n; j++) sum_sq += t->w[j].sum_sq;
    update(k, rt_optim_clip_scale(t->op, sum_sq));
}

static void run_task(worker *task, enum phase p) {
    switch (p) {
    case GRAD: run_grad(task); break;
    case COMBINE: combine_and_prepare(task, !task->team->global_norm); break;
    case UPDATE: clipped_update(task); break;
    case N_PHASES: break;
    }
}

/* The tasks of a phase this thread can take, its own first. */
static void run_phase(rt_workers *t, int me, uint64_t step, enum phase p) {
    for (int i = 0; i < t->n; i++) {
        worker *task = &t->w[(me + i) % t->n];
        if (!claim(task, p, step)) continue;
        run_task(task, p);
        bump(t, &t->done[p]);
    }
}

/* The phases of a step for thread `me`. Without clipping no part waits for the others'
 * gradients: COMBINE does the update, and a gradient that is not finite leaves the other
 * parts updated, which no one sees: the run stops there (a search trial is marked
 * diverged). Returns the last phase, whose end worker 0 waits for. */
static enum phase run_step(rt_workers *t, int me, uint64_t step) {
    enum phase first = t->split == SPLIT_GRAD ? COMBINE : GRAD; /* grad_team has run */
    enum phase last = t->global_norm ? UPDATE : COMBINE;
    for (enum phase p = first; p <= last; p++) {
        if (p > first) wait_until(t, &t->done[p - 1], step * (uint64_t)t->n);
        run_phase(t, me, step, p);
    }
    return last;
}

/* ---- params in column blocks ----
 *
 * A team's GEMM over a weight matrix W [rows x cols] gives thread p the columns of block p
 * (part_start's cuts of cols) in the forward product X·W and in the update W += a·Xᵀ·dZ.
 * Row-major, block p's part of a row lies beside block p+1's, and the cache's prefetchers
 * fetch the neighbour's lines too: each core takes the other's lines away as it writes its
 * own, and on a machine whose cores are far apart the two halves of a GEMM take longer
 * together than the whole one on one core (bench/README.md, "On a Zen 5"). So between
 * its steps the team keeps such a W as its blocks, one after the other, each row-major
 * [rows x cols_p] at rows * first_col_p: a thread's GEMM then reads and writes one piece
 * of memory that no other thread touches. The elements and the order of every sum are the
 * same, so are the bits.
 *
 * Which params: the first team step runs in the row-major layout and records every GEMM
 * operand that lies in a param of rank 2 (or in its momentum buffer, which the step adds
 * to it element by element, so the two share a layout): a param qualifies when every such
 * use is the whole matrix as B (not transposed) or as C with beta != 0, both cut by
 * columns. Any other use (as A, transposed, a part of it) keeps it row-major. Only the
 * fused sgd_step does this: the other optimizers read the gradient and their state by
 * element ranges (COMBINE, UPDATE), which would have to follow the layout too.
 *
 * Outside the team's steps nothing sees the blocks: rt_workers_settle puts the params
 * back in rows before anything else reads or writes them (the epoch's end, a fault,
 * Ctrl-C), and the next step cuts them into blocks again, a copy of the params each way
 * an epoch. */

typedef struct matrix {
    char *w, *v; /* the param and its momentum buffer (or NULL) */
    int64_t rows, cols;
    size_t bytes;      /* of each */
    int used, misused; /* seen in the probe: as a whole cut by columns; otherwise */
} matrix;

static int in_matrix(const matrix *g, const char *base, const void *x) {
    const char *c = x;
    return base && c >= base && c < base + g->bytes;
}

/* The matrix that x lies in (param or momentum buffer), or NULL. */
static matrix *matrix_of(rt_workers *t, const void *x) {
    for (int32_t i = 0; i < t->n_matrices; i++)
        if (in_matrix(&t->matrices[i], t->matrices[i].w, x) ||
            in_matrix(&t->matrices[i], t->matrices[i].v, x))
            return &t->matrices[i];
    return NULL;
}

static int is_whole(const matrix *g, const void *x, int ld, int rows, int cols) {
    return (x == g->w || x == g->v) && ld == g->cols && rows == g->rows && cols == g->cols;
}

/* The probe: how a GEMM of the first team step uses the params (see above). */
static void probe_gemm(rt_workers *t, int tb, int M, int N, int K, const void *A, const void *B,
                       int ldb, int beta_zero, const void *C, int ldc) {
    matrix *g = matrix_of(t, A);
    if (g) g->misused = 1;
    if ((g = matrix_of(t, B)) != NULL) {
        if (tb == CblasNoTrans && is_whole(g, B, ldb, K, N))
            g->used = 1;
        else
            g->misused = 1;
    }
    if ((g = matrix_of(t, C)) != NULL) {
        if (!beta_zero && is_whole(g, C, ldc, M, N))
            g->used = 1;
        else
            g->misused = 1;
    }
}

static int chosen(const rt_workers *t, const matrix *g) {
    return g->used && !g->misused && g->cols / t->n >= PART_ALIGN;
}

/* Lists the params of rank 2, when the team starts; its first step (the probe) marks them.
 * Only thread 0 reads or writes `probing` and the marks during that step. */
static void list_matrices(rt_workers *t, const nnrt_ctx *ctx) {
    const nnrt_model *m = t->m;
    size_t elem = m->f64 ? sizeof(double) : sizeof(float);
    t->matrices = rt_alloc_aligned((size_t)m->n_params + 1, sizeof *t->matrices);
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        if (p->rank != 2) continue;
        matrix *g = &t->matrices[t->n_matrices++];
        char *params = ctx->params ? ctx->params : ctx->fixed;
        g->w = params + (size_t)p->offset * elem;
        g->v =
            p->velocity_offset < 0 ? NULL : (char *)ctx->fixed + (size_t)p->velocity_offset * elem;
        g->rows = p->dims[0];
        g->cols = p->dims[1];
        g->bytes = (size_t)p->numel * elem;
        g->used = g->misused = 0;
    }
}

/* Moves one matrix x between rows and column blocks (to_blocks), through t->scratch. */
static void move_blocks(rt_workers *t, const matrix *g, char *x, int to_blocks) {
    size_t elem = g->bytes / (size_t)(g->rows * g->cols);
    memcpy(t->scratch, x, g->bytes);
    const char *from = t->scratch;
    for (int p = 0; p < t->n; p++) {
        int64_t lo = part_start(g->cols, t->n, p), hi = part_start(g->cols, t->n, p + 1);
        size_t width = (size_t)(hi - lo) * elem;
        for (int64_t r = 0; r < g->rows; r++) {
            size_t in_rows = ((size_t)r * (size_t)g->cols + (size_t)lo) * elem;
            size_t in_blocks =
                ((size_t)g->rows * (size_t)lo + (size_t)r * (size_t)(hi - lo)) * elem;
            if (to_blocks)
                memcpy(x + in_blocks, from + in_rows, width);
            else
                memcpy(x + in_rows, from + in_blocks, width);
        }
    }
}

static void move_chosen(rt_workers *t, int to_blocks) {
    for (int32_t i = 0; i < t->n_matrices; i++) {
        const matrix *g = &t->matrices[i];
        if (!chosen(t, g)) continue;
        move_blocks(t, g, g->w, to_blocks);
        if (g->v) move_blocks(t, g, g->v, to_blocks);
    }
    atomic_store_explicit(&t->blocked, to_blocks, memory_order_release);
}

/* After the probe: room to move the chosen matrices. */
static void end_probe(rt_workers *t) {
    t->probing = 0;
    size_t most = 0;
    for (int32_t i = 0; i < t->n_matrices; i++)
        if (chosen(t, &t->matrices[i]) && t->matrices[i].bytes > most) most = t->matrices[i].bytes;
    if (most) t->scratch = rt_alloc_aligned(most, 1);
}

void rt_workers_settle(rt_workers *t) {
    if (t && atomic_load(&t->blocked)) move_chosen(t, 0);
}

/* Operand X (B or C) of block p's columns [lo, hi): in its column block when X is a blocked
 * matrix (never transposed), else lo columns on (lo rows when transposed). */
static const void *column_block(rt_workers *t, const void *x, int trans, int *ld, int lo, int hi,
                                size_t elem) {
    const matrix *g = matrix_of(t, x);
    if (!g || !atomic_load_explicit(&t->blocked, memory_order_acquire) || !chosen(t, g))
        return (const char *)x + (size_t)lo * (trans == CblasTrans ? (size_t)*ld : 1) * elem;
    *ld = hi - lo;
    return (const char *)x + (size_t)g->rows * (size_t)lo * elem;
}

/* Whether a GEMM is cut by the columns of a param, one block a thread: when its B (not
 * transposed) or its C (beta != 0) is a whole param of rank 2 with 16 columns a thread or
 * more. In every step alike, whether or not the param is in column blocks yet (the first
 * step is not): a block's sums, and so its rounding, do not change with the layout. */
static int column_cut(rt_workers *t, int tb, int M, int N, int K, const void *B, int ldb,
                      int beta_zero, const void *C, int ldc) {
    const matrix *b = matrix_of(t, B), *c = matrix_of(t, C);
    if (b && tb == CblasNoTrans && is_whole(b, B, ldb, K, N) && b->cols / t->n >= PART_ALIGN)
        return 1;
    return c && !beta_zero && is_whole(c, C, ldc, M, N) && c->cols / t->n >= PART_ALIGN;
}

/* ---- the team's step ----
 *
 * With a model that has sgd_step_team and grad_team, every thread runs sgd_step_team (the
 * fused sgd, rt_optim_fused) or grad_team (then COMBINE's and UPDATE's update by parts) at
 * once on the whole batch in worker 0's arenas (docs/runtime.md, "Data-parallel workers").
 * The entry is a sequence of phases, the same in every thread: a
 * GEMM split into n blocks (nnrt_team_sgemm: n tasks) or a run of other steps (one task,
 * nnrt_team_solo). A phase starts once every task of the one before is done; a thread takes
 * the tasks of a phase by a compare-and-swap, its own block first and then any block still
 * untaken, so that a thread the operating system has not scheduled holds no one up: the
 * others do its part. A phase is numbered (step << 32) + its place in the step, so a thread
 * that wakes late, in a phase or a step already done, takes nothing. team_done counts the
 * step's tasks done, above the step's number: (step << 32) + tasks. No gradient is combined,
 * and each element is computed as one thread's sgd_step computes it, whichever thread runs
 * it: the same bits as one worker. */

static void fill_phase(worker *k);

/* Worker 0's ctx (its arenas, batch, noise) and the rate are written by worker 0 between team
 * steps, and a thread that wakes late may come to copy it then. So a thread copies it only while
 * ctx_open, and worker 0 closes it and waits for copies under way before it writes: a
 * Dekker handshake (sequentially consistent atomics) between `copying` and `ctx_open`.
 * Either the thread sees the ctx closed and copies nothing (the step it woke for is over),
 * or worker 0 sees it copying and waits, so the copy happens before the writes. */
static int copy_team_ctx(worker *k, nnrt_ctx *ctx, double *lr, uint64_t *step) {
    rt_workers *t = k->team;
    atomic_store(&k->copying, 1);
    int open = atomic_load(&t->ctx_open);
    if (open) {
        *step = atomic_load(&t->team_step);
        *ctx = t->w[0].ctx;
        *lr = t->lr;
        k->ask_ahead = t->ask_ahead;
    }
    atomic_store(&k->copying, 0);
    return open;
}

static void close_team_ctx(rt_workers *t) {
    atomic_store(&t->ctx_open, 0);
    for (int j = 1; j < t->n; j++)
        while (atomic_load(&t->w[j].copying)) rt_cpu_relax();
}

/* Thread k's part of step `step`, in its copy of worker 0's ctx with k's place. */
static void run_team_step(worker *k, uint64_t step, nnrt_ctx ctx, double lr) {
    rt_workers *t = k->team;
    ctx.team = k;
    k->team_step = step;
    k->phases = k->tasks = 0;
    k->ahead_phase = 0;
    fill_phase(k);
    if (t->split == SPLIT_SGD_STEP)
        t->m->sgd_step_team(&ctx, lr, t->momentum);
    else
        t->m->grad_team(&ctx);
}

static int32_t team_step(rt_workers *t, const rt_dataset *d, const int64_t *rows, int64_t count,
                         int64_t ahead, uint64_t noise_seed, double lr, int64_t optim_step,
                         enum rt_fault *kind) {
    worker *lead = &t->w[0];
    lead->ctx.batch = count; /* its rows: the step's first phase */
    lead->ctx.first_row = 0;
    rt_ids_first_row(0);
    lead->ctx.training = NNRT_TRAINING_STEP;
    lead->ctx.noise_seed = noise_seed;
    lead->share = (rt_share){0, count}; /* the loss and metrics: all in worker 0's arenas */
    for (int j = 1; j < t->n; j++) t->w[j].share = (rt_share){0, 0};
    t->d = d;
    t->rows = rows;
    t->count = count;
    t->ahead = ahead;
    t->ask_ahead = ahead > 0 && rt_batch_input_bytes(t->m, d, ahead) <= AHEAD_MAX_BYTES;
    lead->ask_ahead = t->ask_ahead;
    t->lr = lr;
    if (t->split == SPLIT_GRAD) rt_optim_begin(t->op, lr, optim_step);
    if (t->step == 0) {
        t->probing = t->split == SPLIT_SGD_STEP;
    } else if (t->scratch && !atomic_load(&t->blocked)) {
        move_chosen(t, 1);
    }
    uint64_t step = ++t->step;
    atomic_store(&t->team_done, step << 32);
    atomic_store(&t->team_step, step);
    atomic_store(&t->ctx_open, 1);
    bump(t, &t->started);
    run_team_step(lead, step, lead->ctx, lr);
    close_team_ctx(t);
    lead->ctx.training = NNRT_INFERENCE;
    if (t->probing) end_probe(t);
    *kind = RT_FAULT_VALUE;
    if (t->split == SPLIT_SGD_STEP) return -1; /* the caller checks its loss (rt_optim_step) */
    enum phase last = run_step(t, 0, step);
    wait_until(t, &t->done[last], step * (uint64_t)t->n);
    int32_t bad = first_bad(t, 1);
    *kind = bad >= 0 ? RT_FAULT_GRADIENT : RT_FAULT_VALUE;
    return bad >= 0 ? bad : first_bad(t, 0);
}

/* Waits until the tasks of the thread's phases so far are done. */
void nnrt_team_sync(void *member) {
    worker *k = member;
    wait_until(k->team, &k->team->team_done, k->team_step << 32 | k->tasks);
}

/* The thread's next phase, of `tasks` tasks, once the ones before are done: its number. */
static uint64_t begin_phase(worker *k, uint32_t tasks) {
    nnrt_team_sync(k);
    k->tasks += tasks;
    return k->team_step << 32 | ++k->phases;
}

/* A cache line of its own for each piece's claim. */
struct claim {
    _Alignas(RT_CACHE_LINE) _Atomic uint64_t phase;
};

/* Whether this thread takes piece p of phase `phase` (no thread has taken it yet). */
static int take(rt_workers *t, int p, uint64_t phase) {
    uint64_t seen = atomic_load(&t->claims[p].phase);
    while (seen < phase)
        if (atomic_compare_exchange_weak(&t->claims[p].phase, &seen, phase)) return 1;
    return 0;
}

/* ---- each thread's own inputs ----
 *
 * Every block of the first layer's GEMMs reads the whole batch X (X·W's blocks of W's
 * columns, Xᵀ·dZ's too). Gathered into worker 0's arena by parts, half of X would cross
 * from one core to the other each step, and each gather would first take back the lines
 * the other core read in the step before: on a Zen 5 the forward GEMM's half took 35 us
 * where 25 were its share of one thread's. So each thread gathers the whole batch into
 * an arena of its own (thread 0: worker 0's, which the rest of the step reads), and a
 * GEMM operand in the batch's inputs is read from the running thread's copy. The copies
 * hold the same values, so which thread runs which block does not matter. */

/* x, or its place in thread k's own copy of the inputs when x lies in worker 0's. */
static const void *own_input(const worker *k, const void *x) {
    if (k->index == 0 || !k->own_inputs.varying) return x;
    const rt_workers *t = k->team;
    const char *mine = t->w[0].ctx.varying, *c = x;
    for (int32_t i = 0; i < t->m->n_inputs; i++) {
        const nnrt_tensor *in = &t->m->inputs[i];
        const char *first = rt_tensor_data(t->m, &t->w[0].ctx, in);
        size_t bytes = (size_t)(in->numel * t->w[0].ctx.batch_cap) * rt_elem_size(t->m->f64);
        if (in->varying && c >= first && c < first + bytes)
            return (const char *)k->own_inputs.varying + (c - mine);
    }
    return x;
}

/* The step's first phase: the batch's rows into each thread's arena, task p thread p's.
 * Nothing asks for the next step's rows here: two threads each asking for the whole next
 * batch at once, just before the forward GEMM, made W1's team step 5-13% slower on a Zen 5
 * (IDX bytes and standardised floats alike), and the gather no faster. A thread that would
 * wait through the step's first solo phase asks for them then (nnrt_team_solo). */
static void fill_phase(worker *k) {
    rt_workers *t = k->team;
    uint64_t phase = begin_phase(k, (uint32_t)t->n);
    for (int i = 0; i < t->n; i++) {
        int p = (k->index + i) % t->n;
        if (!take(t, p, phase)) continue;
        nnrt_ctx *into = p == 0 ? &t->w[0].ctx : &t->w[p].own_inputs;
        rt_fill_rows(t->m, into, t->d, t->rows, 0, t->count);
        bump(t, &t->team_done);
    }
}

/* ---- solo phases ----
 *
 * A run of steps between two split GEMMs is one task, and every other thread waits through
 * it. The step's first such phase has a second task: asking for the lines of the next
 * batch's rows (the one-thread loop asks during its step, train.c), which the thread that
 * does not run the steps takes, so that the next fill phase finds the rows in a cache
 * (W1's, standardised digits: 3.4-4.5 us a thread without, 2.2-2.9 with; bench/README.md).
 * Only for a batch of at most AHEAD_MAX_BYTES of inputs: asking for W2's 400 KB made its
 * team's step 1.5% slower (its first solo phase is a bias and relu; 10 interleaved runs).
 * Being a task, it is done before the step ends, so the rows are not reshuffled under it;
 * the thread that ran the steps takes it itself when no other thread came for it. Whether
 * to ask is copied with worker 0's ctx (copy_team_ctx): a thread that wakes late may run a
 * step that is over while worker 0 writes the next one's. */

static void ask_ahead(worker *k) {
    rt_workers *t = k->team;
    rt_prefetch_batch(t->m, t->d, t->rows + t->count, t->ahead);
    bump(t, &t->team_done);
}

int nnrt_team_solo(void *member) {
    worker *k = member;
    rt_workers *t = k->team;
    int with_ahead = k->ask_ahead && k->ahead_phase == 0;
    uint64_t phase = begin_phase(k, with_ahead ? 2 : 1);
    if (with_ahead) k->ahead_phase = phase;
    if (take(t, 0, phase)) return 1;
    if (with_ahead && take(t, 1, phase)) ask_ahead(k);
    return 0;
}

void nnrt_team_done(void *member) {
    worker *k = member;
    rt_workers *t = k->team;
    bump(t, &t->team_done);
    if (k->ahead_phase == (k->team_step << 32 | k->phases) && take(t, 1, k->ahead_phase))
        ask_ahead(k);
}

/* ---- a block of columns of an activation ----
 * A block of a product cut by columns writes part of every row of C, beside another
 * thread's part: with W2's forward product [128, 784]·[784, 512] by halves on a Zen 5, the
 * halves took 355 us at once writing into one C against 305 us each writing a C of its own
 * (bench/README.md). OpenBLAS passes over C once per block of K, and each pass takes back
 * the lines beside the boundary that the cache's prefetchers gave the other core. So a
 * block of columns of rows it shares (beta 0: C is only written) is computed into a compact
 * matrix of the thread's own, then copied into C in one pass: 330 us there. The arithmetic
 * does not depend on where C lies, so the bits are the same. A param kept in column blocks
 * is compact already. */

/* Makes thread k's room hold `bytes` (a whole C, so that any block it takes fits), before
 * it takes any block: only the thread's first step allocates. */
static void reserve_own_c(worker *k, size_t bytes) {
    if (k->own_c_bytes >= bytes) return;
    rt_free(k->own_c);
    k->own_c = rt_alloc_aligned(bytes, 1);
    k->own_c_bytes = bytes;
}

/* rows of `row_bytes` from `from` (packed) into `to`, `to_stride` bytes apart. */
static void copy_rows_out(char *to, size_t to_stride, const char *from, int rows,
                          size_t row_bytes) {
    for (int r = 0; r < rows; r++)
        memcpy(to + (size_t)r * to_stride, from + (size_t)r * row_bytes, row_bytes);
}

/* What a block of a team's f32 product stores besides alpha·A·B + beta·C: with a bias (alpha
 * 1, beta 0), A·B + bias, or its relu when relu (nnrt_team_sgemm_bias_relu). */
typedef struct team_epilogue {
    const float *bias; /* NULL: a plain product */
    int relu;
} team_epilogue;

#define NO_EPILOGUE ((team_epilogue){NULL, 0})

/* The epilogue of a block lo columns on. */
static team_epilogue at_columns(team_epilogue then, int lo) {
    if (then.bias) then.bias += lo;
    return then;
}

/* A block of a team's product of whole_m × whole_n in all: f32 without transposes, or with
 * A the model's data transposed (NNRT_TRANS_DATA), as the whole product runs in one thread,
 * so that each element adds alike (nnrt_sgemm_nn_as and nnrt_sgemm_tn_as, chosen by the whole
 * product), anything else through OpenBLAS. A block of Xᵀ·dZ takes the list of X's nonzero
 * columns that thread k's last block of an X·W made when that block ran in this step (again:
 * taken only for the same matrix, rows, columns and stride): the thread's own copy of the
 * batch, written by the step's fill before any X·W and by nothing after it in the step. k is
 * NULL for a block run outside a team's step. */
static void team_block_sgemm(worker *k, int whole_m, int whole_n, int ta, int tb, int M, int N,
                             int K, float alpha, const float *A, int lda, const float *B, int ldb,
                             float beta, float *C, int ldc, team_epilogue then) {
    if (ta == CblasNoTrans && tb == CblasNoTrans) {
        int in_place = nnrt_sgemm_nn_in_place(whole_m, K, whole_n);
        if (then.bias)
            nnrt_sgemm_nn_bias_relu_as(in_place, M, N, K, A, lda, B, ldb, then.bias,
                                       then.relu ? NULL : C, then.relu ? C : NULL, ldc);
        else
            nnrt_sgemm_nn_as(in_place, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (k) k->listed_step = k->team_step;
        return;
    }
    if (ta == NNRT_TRANS_DATA && tb == CblasNoTrans) {
        int listed = k && k->listed_step == k->team_step;
        nnrt_sgemm_tn_as(nnrt_sgemm_tn_in_place(whole_m, K, whole_n), listed, M, N, K, alpha, A,
                         lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, (enum CBLAS_TRANSPOSE)ta, (enum CBLAS_TRANSPOSE)tb, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
}

static void team_block_dgemm(worker *k, int whole_m, int whole_n, int ta, int tb, int M, int N,
                             int K, double alpha, const double *A, int lda, const double *B,
                             int ldb, double beta, double *C, int ldc, team_epilogue then) {
    (void)k, (void)whole_m, (void)whole_n, (void)then; /* f64 products have no epilogue */
    cblas_dgemm(CblasRowMajor, (enum CBLAS_TRANSPOSE)ta, (enum CBLAS_TRANSPOSE)tb, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
}

/* Block p of n of C = alpha op(A) op(B) + beta C: rows [lo, hi) of the larger of M and N
 * (part_start's cuts), so that each block reads its part of the larger operand and all of
 * the smaller. The elements are computed as in the whole product: OpenBLAS sums each over
 * K alike wherever its block starts (tests/runtime/team_gemm_check.c). Each thread takes its own
 * block first, then any other still untaken. */
#define TEAM_GEMM(T, name, gemm)                                                                   \
    /* gemm, through thread k's room when C is a block of columns of shared rows and the room was  \
     * reserved for this product (reserve_own_c); else straight into C */                          \
    static void name##_into(worker *k, int whole_m, int whole_n, int ta, int tb, int M, int N,     \
                            int K, T alpha, const T *A, int lda, const T *B, int ldb, T beta,      \
                            T *C, int ldc, team_epilogue then) {                                   \
        size_t bytes = (size_t)M * (size_t)N * sizeof(T);                                          \
        if (!k || beta != 0 || ldc == N || k->own_c_bytes < bytes) {                               \
            gemm(k, whole_m, whole_n, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, then); \
            return;                                                                                \
        }                                                                                          \
        T *c = k->own_c;                                                                           \
        gemm(k, whole_m, whole_n, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, c, N, then);       \
        copy_rows_out((char *)C, (size_t)ldc * sizeof(T), (const char *)c, M,                      \
                      (size_t)N * sizeof(T));                                                      \
    }                                                                                              \
    static void name##_piece(worker *k, int p, int n, int ta, int tb, int M, int N, int K,         \
                             T alpha, const T *A, int lda, const T *B, int ldb, T beta, T *C,      \
                             int ldc, team_epilogue then) {                                        \
        int by_rows = M >= N;                                                                      \
        int lo = (int)part_start(by_rows ? M : N, n, p);                                           \
        int hi = (int)part_start(by_rows ? M : N, n, p + 1);                                       \
        if (lo >= hi) return;                                                                      \
        int whole_m = M, whole_n = N;                                                              \
        if (by_rows) {                                                                             \
            A += ta != CblasNoTrans ? lo : (int64_t)lo * lda;                                      \
            C += (int64_t)lo * ldc;                                                                \
            M = hi - lo;                                                                           \
        } else {                                                                                   \
            B += tb == CblasTrans ? (int64_t)lo * ldb : lo;                                        \
            C += lo;                                                                               \
            then = at_columns(then, lo);                                                           \
            N = hi - lo;                                                                           \
        }                                                                                          \
        name##_into(k, whole_m, whole_n, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,     \
                    then);                                                                         \
    }                                                                                              \
    void name##_block(int p, int n, int ta, int tb, int M, int N, int K, T alpha, const T *A,      \
                      int lda, const T *B, int ldb, T beta, T *C, int ldc) {                       \
        name##_piece(NULL, p, n, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,             \
                     NO_EPILOGUE);                                                                 \
    }                                                                                              \
    /* Block p of a GEMM cut by a param's columns (column_cut), in its blocks once it is. */       \
    static void name##_columns(worker *k, int p, int ta, int tb, int M, int N, int K, T alpha,     \
                               const T *A, int lda, const T *B, int ldb, T beta, T *C, int ldc,    \
                               team_epilogue then) {                                               \
        rt_workers *t = k->team;                                                                   \
        int lo = (int)part_start(N, t->n, p), hi = (int)part_start(N, t->n, p + 1);                \
        if (lo >= hi) return;                                                                      \
        const T *b = column_block(t, B, tb, &ldb, lo, hi, sizeof(T));                              \
        T *c = (T *)column_block(t, C, CblasNoTrans, &ldc, lo, hi, sizeof(T));                     \
        name##_into(k, M, N, ta, tb, M, hi - lo, K, alpha, A, lda, b, ldb, beta, c, ldc,           \
                    at_columns(then, lo));                                                         \
    }                                                                                              \
    /* The phase of the whole product, each thread taking blocks */                                \
    static void name##_phase(void *member, int ta, int tb, int M, int N, int K, T alpha,           \
                             const T *A, int lda, const T *B, int ldb, T beta, T *C, int ldc,      \
                             team_epilogue then) {                                                 \
        worker *k = member;                                                                        \
        rt_workers *t = k->team;                                                                   \
        if (k->index == 0 && t->probing) probe_gemm(t, tb, M, N, K, A, B, ldb, beta == 0, C, ldc); \
        int columns = column_cut(t, tb, M, N, K, B, ldb, beta == 0, C, ldc);                       \
        int per = columns ? 1 : PIECES, pieces = t->n * per;                                       \
        A = own_input(k, A);                                                                       \
        B = own_input(k, B);                                                                       \
        if (beta == 0 && (columns || M < N)) reserve_own_c(k, (size_t)M *(size_t)N * sizeof(T));   \
        uint64_t phase = begin_phase(k, (uint32_t)pieces);                                         \
        for (int i = 0; i < pieces; i++) {                                                         \
            int p = (k->index * per + i) % pieces;                                                 \
            if (!take(t, p, phase)) continue;                                                      \
            if (columns)                                                                           \
                name##_columns(k, p, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, then);  \
            else                                                                                   \
                name##_piece(k, p, pieces, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,   \
                             then);                                                                \
            bump(t, &t->team_done);                                                                \
        }                                                                                          \
    }                                                                                              \
    void name(void *member, int ta, int tb, int M, int N, int K, T alpha, const T *A, int lda,     \
              const T *B, int ldb, T beta, T *C, int ldc) {                                        \
        name##_phase(member, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NO_EPILOGUE);   \
    }
TEAM_GEMM(float, nnrt_team_sgemm, team_block_sgemm)
TEAM_GEMM(double, nnrt_team_dgemm, team_block_dgemm)

/* ---- a layer's product with its bias and relu, by blocks ----
 * nnrt_sgemm_nn_bias_relu as a phase: the plain product's blocks (nnrt_team_sgemm), each
 * storing its part of the one output with the bias at its columns (team_block_sgemm), so
 * that the loop after the product does not run in a solo phase. Chosen by the whole
 * product, every block adds as the whole. */

/* The one output of T and H, and the epilogue that stores it. */
static team_epilogue bias_relu_output(const float *bias, float *T, float *H, float **C) {
    if ((T != NULL) == (H != NULL))
        rt_fatal("internal error: a team's bias and relu store one output, T or H");
    *C = H ? H : T;
    return (team_epilogue){bias, H != NULL};
}

void nnrt_team_sgemm_bias_relu_block(int p, int n, int M, int N, int K, const float *A, int lda,
                                     const float *B, int ldb, const float *bias, float *T, float *H,
                                     int ldc) {
    float *C;
    team_epilogue then = bias_relu_output(bias, T, H, &C);
    nnrt_team_sgemm_piece(NULL, p, n, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb,
                          0.0f, C, ldc, then);
}

void nnrt_team_sgemm_bias_relu(void *member, int M, int N, int K, const float *A, int lda,
                               const float *B, int ldb, const float *bias, float *T, float *H,
                               int ldc) {
    float *C;
    team_epilogue then = bias_relu_output(bias, T, H, &C);
    nnrt_team_sgemm_phase(member, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f,
                          C, ldc, then);
}

static void *worker_main(void *arg) {
    worker *k = arg;
    rt_workers *t = k->team;
    for (uint64_t seen = 0;;) {
        wait_until(t, &t->started, seen + 1);
        seen = atomic_load(&t->started); /* the latest: an earlier one is done */
        if (t->stopping) return NULL;
        if (t->split == SPLIT_BATCH) {
            run_step(t, k->index, seen);
            continue;
        }
        uint64_t step;
        nnrt_ctx ctx;
        double lr;
        if (!copy_team_ctx(k, &ctx, &lr, &step)) continue; /* that step is over */
        run_team_step(k, step, ctx, lr);
        if (t->split == SPLIT_GRAD) run_step(t, k->index, step);
    }
}

/* ---- the CPUs ---- */

int rt_usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 && online < INT32_MAX ? (int)online : 0;
}

/* ---- the team ---- */

rt_workers *rt_workers_start(const nnrt_model *m, nnrt_ctx *master, rt_optim *op, int n) {
    rt_workers *t = rt_alloc_aligned(1, sizeof *t);
    t->m = m;
    t->op = op;
    t->global_norm = rt_optim_clips(op);
    t->split = rt_optim_fused(op) ? SPLIT_SGD_STEP : m->grad_team ? SPLIT_GRAD : SPLIT_BATCH;
    if (t->split == SPLIT_SGD_STEP && !m->sgd_step_team)
        rt_fatal("--workers: a fused optimizer for a model without sgd_step_team");
    t->momentum = rt_optim_momentum(op);
    t->n = n;
    t->w = rt_alloc_aligned((size_t)n, sizeof *t->w);
    t->claims = rt_alloc_aligned((size_t)n * PIECES, sizeof *t->claims);
    list_matrices(t, master);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    int64_t elems = rt_optim_elems(op);
    for (int k = 0; k < n; k++) {
        worker *w = &t->w[k];
        w->team = t;
        w->index = k;
        w->ctx = k == 0 || t->split != SPLIT_BATCH
                     ? *master
                     : rt_new_sharing_ctx(m, master->fixed, master->batch_cap);
        w->ctx.dropout_keep = master->dropout_keep; /* --dropout */
        w->lo = part_start(elems, n, k);
        w->hi = part_start(elems, n, k + 1);
        if (k > 0 && t->split != SPLIT_BATCH)
            w->own_inputs = rt_new_ctx(m, master->fixed, master->batch_cap);
    }
    char what[32];
    snprintf(what, sizeof what, "--workers %d", n);
    for (int k = 1; k < n; k++) rt_start_thread(&t->w[k].thread, worker_main, &t->w[k], what);
    return t;
}

void rt_workers_stop(rt_workers *t) {
    if (!t) return;
    t->stopping = 1;
    bump(t, &t->started);
    for (int k = 1; k < t->n; k++) {
        pthread_join(t->w[k].thread, NULL);
        if (t->split == SPLIT_BATCH)
            rt_free_sharing_ctx(&t->w[k].ctx);
        else
            rt_free_ctx_varying(&t->w[k].own_inputs);
    }
    for (int k = 0; k < t->n; k++) rt_free(t->w[k].own_c);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
    rt_workers_settle(t);
    rt_free(t->matrices);
    rt_free(t->claims);
    rt_free(t->scratch);
    rt_free(t->w);
    rt_free(t);
}

int32_t rt_workers_step(rt_workers *t, const rt_dataset *d, const int64_t *rows, int64_t count,
                        int64_t ahead, uint64_t noise_seed, double lr, int64_t step,
                        enum rt_fault *kind) {
    if (t->split != SPLIT_BATCH)
        return team_step(t, d, rows, count, ahead, noise_seed, lr, step, kind);
    t->d = d;
    t->rows = rows;
    t->count = count;
    t->ahead = ahead;
    t->noise_seed = noise_seed;
    rt_optim_begin(t->op, lr, step);
    uint64_t now = ++t->step;
    bump(t, &t->started);
    enum phase last = run_step(t, 0, now);
    wait_until(t, &t->done[last], now * (uint64_t)t->n);
    int32_t bad = first_bad(t, 1);
    *kind = bad >= 0 ? RT_FAULT_GRADIENT : RT_FAULT_VALUE;
    return bad >= 0 ? bad : first_bad(t, 0);
}

double rt_workers_add_metrics(const rt_workers *t, const rt_dataset *d, rt_metrics *acc) {
    double cost = 0.0;
    for (int j = 0; j < t->n; j++) {
        const worker *k = &t->w[j];
        if (k->share.rows == 0) continue;
        double share_cost =
            rt_add_batch_metrics(t->m, &k->ctx, d, t->rows + k->share.first, 0, acc);
        cost += share_cost * ((double)k->share.rows / (double)t->count);
    }
    return cost;
}
