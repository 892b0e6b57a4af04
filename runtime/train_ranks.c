/* train_ranks.c: a training step under mpirun (docs/mpi.md).
 *
 * Under mpirun every rank holds the whole data set and the same row order (the same seed),
 * and computes the gradient of its share of each step's batch, the rows worker k of K would
 * take (rt_worker_share: [ceil(k*B/K), ceil((k+1)*B/K)), so rank 0 always has rows). The
 * generated grad() averages over the rows it is given, so rank k's gradient g_k is weighted
 * b_k/B and the ranks add them up: sum_k (b_k/B) g_k is the mean over the whole batch. The
 * sum (ranks.h) gives every rank the same bits, so every rank makes the same update and the
 * ranks' weights never drift apart. The same sum carries rank 0's states (it alone runs the
 * step that writes them), the step's loss and correct count, and each rank's Ctrl-C. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "lines_ahead.h"
#include "train_run.h"
#include "util.h"

/* The trial of two ways (two_ways.h) of whether ranks in shared memory take the others' params
 * out of the caches: warm-up steps, steps timed, steps a block. W2's steps on 2 ranks take
 * about 2 ms, so the trial lasts a tenth of a second. */
enum { EVICT_TRIAL_WARMUP = 8, EVICT_TRIAL_STEPS = 64, EVICT_TRIAL_BLOCK = 4 };

/* The extra numbers each step's sum carries besides the gradients and the states. */
enum { EXTRA_LOSS, EXTRA_CORRECT, EXTRA_STOP, N_EXTRAS };

/* Rank j's slice of the update's elements (rt_optim_elems: the gradients, in param order)
 * starts here; j = ranks is the end. Slices start at multiples of 16 elements (64 bytes). The
 * ranks add up and update a slice each in shared memory; by messages each rank updates all,
 * but clipping's sum of squares is added up by the same slices, so both give the same bits. */
static int64_t slice_first(const run *r, int j) {
    int64_t n = rt_optim_elems(r->opt);
    return j == r->ranks ? n : n * j / r->ranks / 16 * 16;
}

/* Rank k's share of the step's rows, and the weight of its gradient in the sum. */
static double rank_weight(const run *r, int k, int64_t count) {
    return (double)rt_worker_share(count, r->ranks, k).rows / (double)count;
}

/* ---- ranks in shared memory ----
 *
 * On one machine every rank's fixed arena lives in its segment of one window (ranks.h), so
 * grad() writes the gradients where the others read them. Rank 0's params are the only
 * copy the steps use: the others' ctx.params point at them. A step is grad() on the rank's
 * share, a barrier, then rank j adds up slice j of every rank's gradient in rank order (the
 * numbers and order of the sum by messages), updates slice j of the params and of its own
 * optimizer state (penalties and the update are elementwise; clipping waits at a second
 * barrier for every slice's sum of squares), and a last barrier: every param is updated
 * before the next grad() reads it. The other ranks' own params are brought up to date at
 * an epoch's end (validation, early stopping and the final checksum read them), and rank 0
 * gathers the optimizer's state from the slices' owners before it writes a checkpoint. */

/* What a rank tells the others at each step, at the start of its segment. */
typedef struct rank_note {
    double extras[N_EXTRAS];
    double sum_sq;                   /* its slice's sum of squares, for clipping */
    int32_t bad_gradient, bad_value; /* the first param of its slice at fault, or -1 */
} rank_note;

/* A segment: the note, the fixed arena, the optimizer's state, each on 64 bytes. */
#define NOTE_ROOM 64
_Static_assert(sizeof(rank_note) <= NOTE_ROOM, "a rank's note fits its room");

static size_t fixed_room(const nnrt_model *m) {
    return ((size_t)m->fixed_elems * rt_elem_size(m->f64) + 63) / 64 * 64;
}
static rank_note *note_of(const run *r, int k) {
    return rt_rank_window_segment(r->window, k);
}
static char *fixed_of(const run *r, int k) {
    return (char *)rt_rank_window_segment(r->window, k) + NOTE_ROOM;
}
static char *state_of(const run *r, int k) {
    return fixed_of(r, k) + fixed_room(r->m);
}

/* In one process's memory unless the ranks share a machine: then this rank's arena moves
 * into its segment, as its run and the optimizer see it. */
void rt_run_share_among_ranks(run *r) {
    const nnrt_model *m = r->m;
    r->window = rt_rank_window_new(NOTE_ROOM + fixed_room(m) + rt_optim_state_bytes(r->opt));
    if (!r->window) {
        r->grad_sum = rt_grad_sum_new(m, rt_mpi_bucket_bytes(), N_EXTRAS);
        return;
    }
    char *mine = fixed_of(r, r->rank), *params = fixed_of(r, 0);
    memcpy(mine, r->fixed, (size_t)m->fixed_elems * rt_elem_size(m->f64));
    r->fixed = r->ctx.fixed = r->eval_ctx.fixed = mine;
    r->ctx.params = params;
    r->rank_weights = rt_alloc_array((size_t)r->ranks, sizeof *r->rank_weights);
    r->rank_grads = rt_alloc_array((size_t)r->ranks, sizeof *r->rank_grads);
    rt_optim_share(r->opt, mine, params, state_of(r, r->rank));
}

/* Between two barriers, any number of ranks' gradients: chunks of this many elements are
 * added up in registers and stored, so that a rank's own gradient, one of the addends, is
 * read before its sum replaces it. */
#define SUM_CHUNK 256

/* weighted_sum_T: dst[e] = w_0 g_0[e] + w_1 g_1[e] + .. in rank order, each product rounded
 * to T first: the numbers and the order of the sum by messages (move_elems, then
 * rt_rank_sum_all). A chunk's sums stay in acc until every rank's term is in; the inner loop,
 * inlined where its count is the constant SUM_CHUNK, GCC vectorises at -O2. */
#define WEIGHTED_SUM(T)                                                                            \
    static inline void weighted_chunk_##T(T *restrict acc, const T *restrict g, T w, int64_t n,    \
                                          int add) {                                               \
        if (add)                                                                                   \
            for (int64_t e = 0; e < n; e++) acc[e] += g[e] * w;                                    \
        else                                                                                       \
            for (int64_t e = 0; e < n; e++) acc[e] = g[e] * w;                                     \
    }                                                                                              \
    static void weighted_sum_##T(void *dst, const char *const *from, const double *weight,         \
                                 int ranks, int64_t n) {                                           \
        T *out = dst;                                                                              \
        for (int64_t at = 0; at < n; at += SUM_CHUNK) {                                            \
            int64_t len = n - at < SUM_CHUNK ? n - at : SUM_CHUNK;                                 \
            T acc[SUM_CHUNK];                                                                      \
            for (int k = 0; k < ranks; k++) {                                                      \
                const T *g = (const T *)(const void *)from[k] + at;                                \
                if (len == SUM_CHUNK)                                                              \
                    weighted_chunk_##T(acc, g, (T)weight[k], SUM_CHUNK, k > 0);                    \
                else                                                                               \
                    weighted_chunk_##T(acc, g, (T)weight[k], len, k > 0);                          \
            }                                                                                      \
            memcpy(out + at, acc, (size_t)len * sizeof(T));                                        \
        }                                                                                          \
    }
WEIGHTED_SUM(float)
WEIGHTED_SUM(double)

/* Calls visit(r, at, n, rank) for each run of the update's elements lo .. hi (rt_optim_elems:
 * the params' gradients, in param order): n elements from byte `at` of a fixed arena, the same
 * place in every rank's, of the gradients or (`params`) of the params they update. */
typedef void elem_run_fn(run *r, size_t at, int64_t n, int rank);
static void each_run(run *r, int64_t lo, int64_t hi, int params, elem_run_fn *visit, int rank) {
    const nnrt_model *m = r->m;
    size_t esize = rt_elem_size(m->f64);
    int64_t start = 0;
    for (int32_t i = 0; i < m->n_params && start < hi; i++) {
        const nnrt_tensor *t = &m->params[i];
        if (t->grad_offset < 0) continue;
        int64_t a = lo > start ? lo : start, end = start + t->numel, b = hi < end ? hi : end;
        int64_t offset = params ? t->offset : t->grad_offset;
        if (a < b) visit(r, (size_t)(offset + a - start) * esize, b - a, rank);
        start = end;
    }
}
static void each_grad_run(run *r, int64_t lo, int64_t hi, elem_run_fn *visit, int rank) {
    each_run(r, lo, hi, 0, visit, rank);
}

/* n elements at byte `at`: every rank's gradient, weighted by r->rank_weights, summed into
 * this rank's own. */
static void sum_run(run *r, size_t at, int64_t n, int unused) {
    (void)unused;
    for (int k = 0; k < r->ranks; k++) r->rank_grads[k] = fixed_of(r, k) + at;
    if (r->m->f64)
        weighted_sum_double((char *)r->fixed + at, r->rank_grads, r->rank_weights, r->ranks, n);
    else
        weighted_sum_float((char *)r->fixed + at, r->rank_grads, r->rank_weights, r->ranks, n);
}

/* n params at byte `at` of rank 0's arena (the steps' only copy), out of every cache. */
static void evict_param_run(run *r, size_t at, int64_t n, int unused) {
    (void)unused;
    rt_evict_lines(fixed_of(r, 0) + at, (size_t)n * rt_elem_size(r->m->f64));
}

/* The params of the other ranks' slices out of the caches, after this rank's grad() has read
 * them for the last time in the step: their owners update them after the barrier, and a store
 * to a line that another core holds must first take that copy away. Rank j's update of its
 * slice then finds no copies elsewhere. On a Zen 5 whose cores hand lines over slowly (a round
 * trip of 650 ns), W2 on 2 ranks went from 51k to 57k samples/s (bench/README.md, "The
 * ranks' params out of the caches"); where handing lines over is cheap, the flush and the
 * update's reads from memory may cost more than they save, so the ranks measure it
 * (r->evicts). Taking lines out changes no value. */
static void evict_other_params(run *r) {
    for (int k = 0; k < r->ranks; k++)
        if (k != r->rank)
            each_run(r, slice_first(r, k), slice_first(r, k + 1), 1, evict_param_run, 0);
}

/* Elements lo .. hi of the update's, summed over the ranks' gradients into this rank's own. */
static void sum_slice(run *r, int64_t lo, int64_t hi) {
    each_grad_run(r, lo, hi, sum_run, 0);
}

/* n elements at byte `at`, copied from rank k's arena into this rank's. */
static void copy_run(run *r, size_t at, int64_t n, int k) {
    memcpy((char *)r->fixed + at, fixed_of(r, k) + at, (size_t)n * rt_elem_size(r->m->f64));
}

/* Every rank's slice of the summed gradients into this rank's own, for --log-grad-norms:
 * between barriers, before any rank penalises or clips its slice. */
static void gather_gradients(run *r) {
    rt_rank_window_barrier(r->window);
    for (int k = 0; k < r->ranks; k++)
        if (k != r->rank) each_grad_run(r, slice_first(r, k), slice_first(r, k + 1), copy_run, k);
    rt_rank_window_barrier(r->window);
}

/* Copies rank 0's params (the steps' only copy) or states into this rank's own arena. */
static void copy_from_rank0(run *r, const nnrt_tensor *tensors, int32_t n) {
    size_t esize = rt_elem_size(r->m->f64);
    for (int32_t i = 0; i < n; i++)
        memcpy((char *)r->fixed + (size_t)tensors[i].offset * esize,
               fixed_of(r, 0) + (size_t)tensors[i].offset * esize,
               (size_t)tensors[i].numel * esize);
}

/* Rank 0, before it writes a checkpoint: the optimizer's state of every slice from the rank
 * that updates it. The others wait for rank 0 at the next step's first barrier, so their
 * state holds still meanwhile. */
void rt_run_gather_optimizer_state(run *r) {
    for (int k = 1; r->window && k < r->ranks; k++)
        rt_optim_copy_state_part(r->opt, state_of(r, k), slice_first(r, k), slice_first(r, k + 1));
}

/* The first fault of the ranks' slices in rank order (the lowest param), or -1. */
static int32_t first_bad(const run *r, int gradient) {
    for (int k = 0; k < r->ranks; k++) {
        const rank_note *note = note_of(r, k);
        int32_t bad = gradient ? note->bad_gradient : note->bad_value;
        if (bad >= 0) return bad;
    }
    return -1;
}

/* A slice goes through the sum, the penalties and the update a chunk of this many elements
 * at a time, each step on a chunk still in the cache from the one before. */
#define UPDATE_CHUNK 8192

/* Chunk by chunk of the elements lo .. hi: the ranks' gradients added up (when `sum`), the
 * penalties, whose sums of squares are added to *sum_sq, and the update unclipped (when
 * `update`), whose first param not finite goes to *bad_value. The first param whose gradient
 * is not finite, or -1 (the update finds it). Both ways of adding up go through the same
 * chunks, so clipping's sum of squares has the same bits. */
static int32_t through_chunks(run *r, int64_t lo, int64_t hi, int sum, int update, double *sum_sq,
                              int32_t *bad_value) {
    for (int64_t c = lo; c < hi; c += UPDATE_CHUNK) {
        int64_t end = hi - c < UPDATE_CHUNK ? hi : c + UPDATE_CHUNK;
        if (sum) sum_slice(r, c, end);
        *sum_sq += rt_optim_prepare_part(r->opt, c, end);
        int32_t bad = update ? rt_optim_update_part(r->opt, c, end, 1.0, bad_value) : -1;
        if (bad >= 0) return bad;
    }
    return -1;
}

/* The shared step after its first barrier: the step's extras summed, rank 0's states
 * copied, this rank's slice summed, penalised, clipped and updated, and the last barrier.
 * Returns the param at fault, or -1. */
static int32_t update_my_slice(run *r, int64_t count, double lr, int last, double *extras,
                               enum rt_fault *kind) {
    for (int k = 0; k < r->ranks; k++) r->rank_weights[k] = rank_weight(r, k, count);
    for (int e = 0; e < N_EXTRAS; e++) {
        extras[e] = note_of(r, 0)->extras[e];
        for (int k = 1; k < r->ranks; k++) extras[e] += note_of(r, k)->extras[e];
    }
    if (r->rank > 0) copy_from_rank0(r, r->m->states, r->m->n_states);
    int64_t lo = slice_first(r, r->rank), hi = slice_first(r, r->rank + 1);
    int gather = r->grad_norms.now && last, clips = rt_optim_clips(r->opt);
    if (gather) { /* --log-grad-norms: the whole summed gradient, before any penalty */
        sum_slice(r, lo, hi);
        gather_gradients(r);
        rt_run_grad_norms(r);
    }
    rank_note *note = note_of(r, r->rank);
    rt_optim_begin(r->opt, lr, r->step);
    note->sum_sq = 0;
    note->bad_value = -1;
    note->bad_gradient =
        through_chunks(r, lo, hi, !gather, !clips, &note->sum_sq, &note->bad_value);
    if (clips) { /* the norm of the whole gradient first */
        rt_rank_window_barrier(r->window);
        double sum_sq = 0;
        for (int k = 0; k < r->ranks; k++) sum_sq += note_of(r, k)->sum_sq;
        note->bad_gradient = rt_optim_update_part(
            r->opt, lo, hi, rt_optim_clip_scale(r->opt, sum_sq), &note->bad_value);
    }
    /* A rank that updated its slice while another's gradient failed makes no difference:
     * the run stops on it after the barrier, and a failed step's weights are never saved. */
    rt_rank_window_barrier(r->window);
    *kind = RT_FAULT_GRADIENT;
    int32_t bad = first_bad(r, 1);
    if (bad >= 0) return bad;
    *kind = RT_FAULT_VALUE;
    bad = first_bad(r, 0);
    return bad >= 0 ? bad : rt_optim_nonfinite_without_gradient(r->opt);
}

/* ---- a step on each rank ---- */

/* What every rank must agree on before the first step, else they would not split the same
 * batches: the counts of rows and steps, the batch, the model's arena and where a resumed
 * run starts. */
void rt_run_check_ranks_agree(const run *r) {
    enum { ROWS, BATCH, EPOCHS, STEPS, SEED, FIXED, EPOCH, POS, STEP, BUCKET, N_FACTS };
    static const char *const names[N_FACTS] = {"training rows",
                                               "batch",
                                               "epochs",
                                               "step limit",
                                               "seed",
                                               "fixed arena elements",
                                               "epochs done (--resume)",
                                               "rows done in the epoch (--resume)",
                                               "steps done (--resume)",
                                               "bytes a bucket of the sum (NNRT_MPI_BUCKET)"};
    int64_t mine[N_FACTS] = {
        r->data->n_train,  r->batch, r->epochs, r->o->steps, r->o->seed,
        r->m->fixed_elems, r->epoch, r->pos,    r->step,     rt_mpi_bucket_bytes()};
    int64_t *all = rt_alloc_array((size_t)N_FACTS * (size_t)r->ranks, sizeof *all);
    rt_ranks_gather(mine, N_FACTS, all);
    for (int k = 1; k < r->ranks; k++)
        for (int f = 0; f < N_FACTS; f++)
            if (all[k * N_FACTS + f] != all[f])
                rt_fatal("rank %d has %s %lld, rank 0 %lld: every rank must run the same "
                         "program with the same data and options",
                         k, names[f], (long long)all[k * N_FACTS + f], (long long)all[f]);
    rt_free(all);
    /* rank 0's params, resumed or not, are stored before any rank's first grad() reads them */
    if (r->window) rt_rank_window_barrier(r->window);
}

void rt_run_start_ranks(run *r) {
    if (!has_inputs(r))
        rt_usage_error("model '%s' has no inputs, so no batch to share among %d ranks: run it "
                       "without mpirun",
                       r->m->name, r->ranks);
    if (r->o->workers > 1 || r->o->hogwild > 0)
        rt_usage_error("%s under mpirun: each of the %d ranks trains on one thread; start more "
                       "ranks instead (mpirun -np K)",
                       r->o->workers > 1 ? "--workers" : "--hogwild", r->ranks);
    rt_two_ways_start(&r->evicts, EVICT_TRIAL_WARMUP, EVICT_TRIAL_STEPS, EVICT_TRIAL_BLOCK);
}

/* grad() on rank r->rank's share of rows[0..count); its metrics. By messages, grad() hands
 * each bucket of gradients to the sum as soon as it has finished it (grad_sum.h). */
static rt_metrics grad_of_share(run *r, const int64_t *rows, int64_t count) {
    const nnrt_model *m = r->m;
    if (r->trace && r->step == 0)
        rt_trace_row(r->trace, 0, r->fixed, rt_run_batch_loss(r, rows, count));
    rt_share share = rt_worker_share(count, r->ranks, r->rank);
    int64_t lo = share.first, hi = share.first + share.rows;
    rt_metrics mine = {0};
    r->ctx.noise_seed = rt_rng_next(&r->noise_rng);
    void *listener = r->grad_sum
                         ? rt_grad_sum_begin(r->grad_sum, r->fixed, rank_weight(r, r->rank, count),
                                             r->rank == 0 ? 1.0 : 0.0)
                         : NULL;
    if (hi > lo) { /* a batch smaller than the ranks leaves some without rows */
        rt_fill_batch(m, &r->ctx, &r->data->train, rows + lo, 0, hi - lo, 1);
        rt_share next = rt_worker_share(rt_run_next_batch_rows(r, rows, count), r->ranks, r->rank);
        rt_prefetch_batch_in_step(m, &r->data->train, rows + count + next.first, next.rows);
        r->ctx.first_row = lo;
        rt_ids_first_row(lo);
        r->ctx.training = r->rank == 0 ? NNRT_TRAINING_STEP : NNRT_TRAINING;
        r->ctx.on_grads = listener;
        m->grad(&r->ctx);
        rt_lines_ahead_rest();
        r->ctx.on_grads = NULL;
        r->ctx.training = NNRT_INFERENCE;
        r->ctx.first_row = 0;
        rt_ids_first_row(0);
        rt_add_batch_metrics(m, &r->ctx, &r->data->train, rows + lo, 0, &mine);
    }
    return mine;
}

/* The update by messages: every rank updates every element, clipped by the sums of squares
 * of the slices' chunks in rank order, as the ranks in shared memory add them up. */
static int32_t update_by_slices(run *r, double lr, enum rt_fault *kind) {
    rt_optim_begin(r->opt, lr, r->step);
    double sum_sq = 0;
    int32_t bad_value = -1;
    for (int k = 0; k < r->ranks; k++) { /* each slice's sum, then theirs in rank order */
        double part = 0;
        through_chunks(r, slice_first(r, k), slice_first(r, k + 1), 0, 0, &part, &bad_value);
        sum_sq += part;
    }
    int32_t bad = rt_optim_update_part(r->opt, 0, slice_first(r, r->ranks),
                                       rt_optim_clip_scale(r->opt, sum_sq), &bad_value);
    *kind = bad >= 0 ? RT_FAULT_GRADIENT : RT_FAULT_VALUE;
    if (bad >= 0) return bad;
    return bad_value >= 0 ? bad_value : rt_optim_nonfinite_without_gradient(r->opt);
}

/* The gradients, states and extras through the sum by messages, and the update. */
static int32_t sum_and_update(run *r, double lr, int last, double *extras, enum rt_fault *kind) {
    double *sum = rt_grad_sum_extras(r->grad_sum);
    memcpy(sum, extras, N_EXTRAS * sizeof *extras);
    rt_grad_sum_finish(r->grad_sum);
    memcpy(extras, sum, N_EXTRAS * sizeof *extras);
    if (r->grad_norms.now && last) rt_run_grad_norms(r);
    return update_by_slices(r, lr, kind);
}

/* train_step on rank r->rank's share of rows[0..count), then the update every rank makes. */
int rt_run_rank_step(run *r, const int64_t *rows, int64_t count, double lr) {
    const nnrt_model *m = r->m;
    /* In shared memory the ranks time their first steps with and without the eviction. Every
     * rank takes the same way at the same step, and the barriers make their steps last about
     * alike, so each keeps the way that the others' timings favour too. */
    int timed = r->window && rt_two_ways_timing(&r->evicts);
    double start = timed ? rt_now() : 0;
    rt_metrics mine = grad_of_share(r, rows, count);
    int last = rt_run_last_step_of_epoch(r, count);
    /* the weights before the update: before any rank's update, which follows the barrier */
    if (r->update_ratios.now && last) rt_run_copy_weights(r->m, r->fixed, r->before_update, 1);
    double extras[N_EXTRAS] = {mine.loss_sum, (double)mine.correct, rt_run_interrupted() ? 1 : 0};
    r->step++;
    enum rt_fault kind;
    int32_t bad;
    if (r->window) {
        memcpy(note_of(r, r->rank)->extras, extras, sizeof extras);
        if (rt_two_ways_next(&r->evicts)) evict_other_params(r);
        rt_rank_window_barrier(r->window); /* every gradient, state and note is stored */
        bad = update_my_slice(r, count, lr, last, extras, &kind);
        if (timed) rt_two_ways_took(&r->evicts, rt_now() - start);
        if (last && r->rank > 0) copy_from_rank0(r, m->params, m->n_params);
        /* rank 0 changes its params after the last step (early stopping's best) only once
         * every rank has its copy */
        if (last) rt_rank_window_barrier(r->window);
    } else {
        bad = sum_and_update(r, lr, last, extras, &kind);
    }
    r->agreed_stop = extras[EXTRA_STOP] > 0;
    if (!rt_run_step_ok(r, extras[EXTRA_LOSS] / (double)count, bad, kind)) return 0;
    if (r->update_ratios.now && last) rt_run_update_ratios(r);
    rt_metrics all = {extras[EXTRA_LOSS], (int64_t)extras[EXTRA_CORRECT], count,
                      count * rt_class_layout_of(m).steps};
    rt_add_metrics(&r->partial, all);
    if (r->trace) rt_trace_row(r->trace, r->step, r->fixed, rt_run_batch_loss(r, rows, count));
    return 1;
}

/* FNV-1a of the bytes of the params, then the states: the same on every rank, or a rank has
 * drifted (a kernel that rounds differently on another machine's CPU). */
static int64_t weights_checksum(const run *r) {
    uint64_t h = 0xcbf29ce484222325u;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        const unsigned char *p = rt_elem_cptr(r->fixed, t->offset, r->m->f64);
        size_t bytes = (size_t)t->numel * rt_elem_size(r->m->f64);
        for (size_t b = 0; b < bytes; b++) h = (h ^ p[b]) * 0x100000001b3u;
    }
    return (int64_t)h;
}

/* After the last step: every rank must hold rank 0's weights, which rank 0 saves. Rank 0
 * says so, with the checksum of each rank's. */
void rt_run_check_same_weights(const run *r) {
    if (r->ranks == 1) return;
    int64_t mine = weights_checksum(r);
    int64_t *all = rt_alloc_array((size_t)r->ranks, sizeof *all);
    rt_ranks_gather(&mine, 1, all);
    for (int k = 1; k < r->ranks; k++)
        if (all[k] != all[0])
            rt_fatal("rank %d holds other weights than rank 0 after training (checksum "
                     "%016llx, rank 0 %016llx)",
                     k, (unsigned long long)all[k], (unsigned long long)all[0]);
    if (r->rank == 0 && !r->o->quiet) {
        fprintf(stderr, "%d ranks, the same weights on each: checksum", r->ranks);
        for (int k = 0; k < r->ranks; k++) fprintf(stderr, " %016llx", (unsigned long long)all[k]);
        if (r->grad_sum)
            fprintf(stderr, "; summed by messages in %d bucket%s a step, %d sent while grad() ran",
                    rt_grad_sum_buckets(r->grad_sum),
                    rt_grad_sum_buckets(r->grad_sum) > 1 ? "s" : "",
                    rt_grad_sum_early(r->grad_sum));
        fputc('\n', stderr);
    }
    rt_free(all);
}

/* Rank 0 writes the log, the progress, the trace, the plot, the weights and the
 * checkpoints; the other ranks' options lose them. */
rt_options rt_only_rank0_writes(const rt_options *o) {
    rt_options mine = *o;
    if (rt_rank() == 0) return mine;
    mine.quiet = 1;
    mine.log = mine.plot = mine.save = mine.trace = NULL;
    mine.checkpoint_every = 0;
    return mine;
}
