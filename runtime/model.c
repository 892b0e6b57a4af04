/* model.c: descriptor checks, arenas, batches and metrics (see model.h). */
#include "model.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "init.h"
#include "lines_ahead.h"
#include "param_pattern.h"
#include "sample.h"
#include "text.h"
#include "util.h"

/* ---- descriptor checks ---- */

static void check_range(const char *name, const char *what, int64_t offset, int64_t numel,
                        int64_t arena_elems, const char *arena) {
    if (offset < 0 || numel > arena_elems || offset > arena_elems - numel)
        rt_fatal("model descriptor: %s of '%s' (offset %lld, %lld elements) lies outside the %s "
                 "arena of %lld elements",
                 what, name, (long long)offset, (long long)numel, arena, (long long)arena_elems);
}

void rt_check_tensor_place(const nnrt_tensor *t, const char *role, int64_t fixed_elems,
                           int64_t varying_elems) {
    if (!t->name) rt_fatal("model descriptor: %s without a name", role);
    if (t->rank < 0 || t->rank > NNRT_MAX_RANK)
        rt_fatal("model descriptor: %s '%s' has rank %d", role, t->name, t->rank);
    int64_t numel = 1;
    for (int32_t i = 0; i < t->rank; i++) {
        if (t->dims[i] < 1 || numel > INT64_MAX / t->dims[i])
            rt_fatal("model descriptor: %s '%s' has a bad dimension %lld", role, t->name,
                     (long long)t->dims[i]);
        numel *= t->dims[i];
    }
    if (numel != t->numel)
        rt_fatal("model descriptor: %s '%s' has numel %lld, its dims say %lld", role, t->name,
                 (long long)t->numel, (long long)numel);
    if (t->varying)
        check_range(t->name, role, t->offset, numel, varying_elems, "varying");
    else
        check_range(t->name, role, t->offset, numel, fixed_elems, "fixed");
}

/* Shape, and place in an arena of varying_elems elements a sample or in the fixed one. */
static void check_tensor_in(const nnrt_model *m, const nnrt_tensor *t, const char *role,
                            int64_t varying_elems) {
    rt_check_tensor_place(t, role, m->fixed_elems, varying_elems);
}

/* Shape, and place in the arena the tensor says it lives in. */
static void check_tensor(const nnrt_model *m, const nnrt_tensor *t, const char *role) {
    check_tensor_in(m, t, role, m->varying_elems);
}

/* The bindings predict prints lie in predict's arena, which may be larger (nnrt.h). */
static void check_bindings(const nnrt_model *m) {
    if (m->n_bindings < 0 || (m->n_bindings > 0 && !m->bindings) || m->predict_extra_elems < 0 ||
        m->predict_extra_elems > INT64_MAX - m->varying_elems)
        rt_fatal("model descriptor: bad binding list");
    for (int32_t i = 0; i < m->n_bindings; i++)
        check_tensor_in(m, &m->bindings[i], "binding", rt_predict_elems(m));
}

static void check_param(const nnrt_model *m, const nnrt_tensor *t) {
    check_tensor(m, t, "param");
    if (t->varying) rt_fatal("model descriptor: param '%s' is marked varying", t->name);
    if (!rt_init_name(t->init))
        rt_fatal("model descriptor: param '%s' has unknown initialiser %d", t->name, t->init);
    if (t->grad_offset != -1)
        check_range(t->name, "gradient", t->grad_offset, t->numel, m->fixed_elems, "fixed");
    if (t->velocity_offset != -1)
        check_range(t->name, "momentum buffer", t->velocity_offset, t->numel, m->fixed_elems,
                    "fixed");
    for (const nnrt_tensor *other = m->params; other < t; other++)
        if (strcmp(other->name, t->name) == 0)
            rt_fatal("model descriptor: two params are named '%s'", t->name);
}

/* A state: a fixed tensor with a constant start, no gradient, a name no param or other state
 * has (the weights file holds both under their names). */
static void check_state(const nnrt_model *m, const nnrt_tensor *t) {
    check_tensor(m, t, "state");
    if (t->varying) rt_fatal("model descriptor: state '%s' is marked varying", t->name);
    if (!rt_init_is_constant(t->init))
        rt_fatal("model descriptor: state '%s' has initialiser %d, not a constant", t->name,
                 t->init);
    if (t->grad_offset != -1 || t->velocity_offset != -1)
        rt_fatal("model descriptor: state '%s' has a gradient buffer", t->name);
    for (int32_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, t->name) == 0)
            rt_fatal("model descriptor: a param and a state are named '%s'", t->name);
    for (const nnrt_tensor *other = m->states; other < t; other++)
        if (strcmp(other->name, t->name) == 0)
            rt_fatal("model descriptor: two states are named '%s'", t->name);
}

static void check_data_tensors(const nnrt_model *m, const nnrt_tensor *ts, int32_t n,
                               const char *role) {
    if (n < 0 || (n > 0 && !ts)) rt_fatal("model descriptor: bad %s list", role);
    for (int32_t i = 0; i < n; i++) {
        check_tensor(m, &ts[i], role);
        if (!ts[i].varying) rt_fatal("model descriptor: %s '%s' is not varying", role, ts[i].name);
    }
}

void rt_check_model(const nnrt_model *m) {
    if (m->abi_version != NNRT_ABI_VERSION)
        rt_fatal("the model was compiled for runtime ABI %d, this runtime has ABI %d",
                 m->abi_version, NNRT_ABI_VERSION);
    if ((m->f64 != 0 && m->f64 != 1) || m->fixed_elems < 0 || m->varying_elems < 0)
        rt_fatal("model descriptor: bad element type or arena sizes");
    if (m->n_params < 0 || (m->n_params > 0 && !m->params))
        rt_fatal("model descriptor: bad param list");
    for (int32_t i = 0; i < m->n_params; i++) check_param(m, &m->params[i]);
    if (m->n_states < 0 || (m->n_states > 0 && !m->states))
        rt_fatal("model descriptor: bad state list");
    for (int32_t i = 0; i < m->n_states; i++) check_state(m, &m->states[i]);
    check_data_tensors(m, m->inputs, m->n_inputs, "input");
    check_data_tensors(m, m->targets, m->n_targets, "target");
    check_tensor(m, &m->loss, "loss");
    check_bindings(m);
    if (m->loss.numel != 1) rt_fatal("model descriptor: the loss is not a scalar per sample");
    if (m->n_inputs > 0) {
        check_tensor(m, &m->output, "output");
        if (!m->output.varying) rt_fatal("model descriptor: the output is not varying");
        if (!m->predict) rt_fatal("model descriptor: no predict entry point");
    }
    if (!m->forward || !m->sgd_step) rt_fatal("model descriptor: missing entry points");
    if (m->train.classification < NNRT_ACCURACY_NONE ||
        m->train.classification > NNRT_ACCURACY_LOGIT)
        rt_fatal("model descriptor: bad accuracy kind %d", m->train.classification);
    if (m->n_inputs > 0 && m->train.classification && m->n_targets == 0)
        rt_fatal("model descriptor: a classification model needs a target");
    if (m->train.n_columns < 0 || (m->train.n_columns > 0 && !m->train.columns))
        rt_fatal("model descriptor: bad CSV column list");
    for (int32_t i = 0; i < m->train.n_columns; i++)
        if (!m->train.columns[i].tensor)
            rt_fatal("model descriptor: a CSV column range names no tensor");
    rt_check_step(m);
}

/* ---- arenas ---- */

void *rt_new_fixed_arena(const nnrt_model *m) {
    return rt_alloc_aligned((size_t)m->fixed_elems, rt_elem_size(m->f64));
}

/* The compiled model hands BLAS a batch of rows at once, and BLAS counts in int: every
 * value with a batch axis, for the whole batch, must stay below 2^31 elements. The varying
 * arena holds them all, so bounding it is enough (a conservative bound: 8 GB of f32). */
#define RT_MAX_BATCH_ELEMS INT32_MAX

int64_t rt_predict_elems(const nnrt_model *m) {
    return m->varying_elems + m->predict_extra_elems;
}

static int64_t batch_within(int64_t rows, int64_t varying_elems) {
    int64_t cap = rows < RT_EVAL_CHUNK ? (rows > 0 ? rows : 1) : RT_EVAL_CHUNK;
    int64_t largest = varying_elems > 0 ? RT_MAX_BATCH_ELEMS / varying_elems : cap;
    return cap < largest || largest < 1 ? cap : largest;
}

int64_t rt_eval_batch(const nnrt_model *m, int64_t rows) {
    return batch_within(rows, m->varying_elems);
}

int64_t rt_predict_batch(const nnrt_model *m, int64_t rows) {
    return batch_within(rows, rt_predict_elems(m));
}

static nnrt_ctx new_ctx(const nnrt_model *m, void *fixed, int64_t batch_cap, int64_t elems) {
    if (elems > 0 && batch_cap > RT_MAX_BATCH_ELEMS / elems)
        rt_usage_error("batch %lld is too large for model '%s': its values take %lld elements "
                       "a sample, and a batch of them must stay below 2^31 elements (BLAS "
                       "counts in int); the largest batch is %lld",
                       (long long)batch_cap, m->name, (long long)elems,
                       (long long)(RT_MAX_BATCH_ELEMS / elems));
    nnrt_ctx ctx = {0};
    ctx.fixed = fixed;
    ctx.varying = rt_alloc_aligned((size_t)(elems * batch_cap), rt_elem_size(m->f64));
    ctx.batch = batch_cap;
    ctx.batch_cap = batch_cap;
    return ctx;
}

/* The error for a param name the model does not have, with the nearest as a hint and the
 * list of its params (the first 1 KB of it). */
int32_t rt_param_named(const nnrt_model *m, const char *name, size_t len) {
    for (int32_t i = 0; i < m->n_params; i++)
        if (rt_name_is(m->params[i].name, name, len)) return i;
    return -1;
}

_Noreturn void rt_no_such_param(const nnrt_model *m, const char *option, const char *name,
                                size_t len) {
    char *one = rt_strndup(name, len), list[1024];
    Suggestion near = suggest_start(one);
    size_t used = 0;
    list[0] = '\0';
    for (int32_t i = 0; i < m->n_params; i++) {
        suggest_consider(&near, m->params[i].name);
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     m->params[i].name);
    }
    rt_did_you_mean(&near, "");
    rt_usage_error("%s: model '%s' has no param '%s' (its params: %s)", option, m->name, one, list);
}

void rt_mark_params(const nnrt_model *m, const char *option, const char *pattern, size_t len,
                    unsigned char *on) {
    char *one = rt_strndup(pattern, len);
    int found = 0;
    for (int32_t i = 0; i < m->n_params; i++)
        if (rt_param_matches(one, m->params[i].name)) found = on[i] = 1;
    if (!found) rt_no_such_param(m, option, pattern, len);
    rt_free(one);
}

nnrt_ctx rt_new_ctx(const nnrt_model *m, void *fixed, int64_t batch_cap) {
    return new_ctx(m, fixed, batch_cap, m->varying_elems);
}

nnrt_ctx rt_new_predict_ctx(const nnrt_model *m, void *fixed, int64_t batch_cap) {
    return new_ctx(m, fixed, batch_cap, rt_predict_elems(m));
}

void rt_free_ctx_varying(nnrt_ctx *ctx) {
    rt_free(ctx->varying);
    ctx->varying = NULL;
}

nnrt_ctx rt_new_sharing_ctx(const nnrt_model *m, void *shared, int64_t batch_cap) {
    size_t elem = rt_elem_size(m->f64);
    void *own = rt_alloc_aligned((size_t)m->fixed_elems, elem);
    memcpy(own, shared, (size_t)m->fixed_elems * elem);
    nnrt_ctx ctx = rt_new_ctx(m, own, batch_cap);
    ctx.params = shared;
    return ctx;
}

void rt_free_sharing_ctx(nnrt_ctx *ctx) {
    rt_free_ctx_varying(ctx);
    rt_free(ctx->fixed);
    ctx->fixed = NULL;
}

/* ---- batches ---- */

/* Gathering a batch: each tensor in turn, its part of each row copied (or converted) into its
 * buffer, so that the loop over rows does nothing but copy. The rows of a shuffled batch lie
 * anywhere in the data set, and a row's first touch would wait for memory, one row after the
 * other: so the loop asks for the rows about GATHER_AHEAD_BYTES on while it copies one, and
 * the memory fetches many lines at once. Data kept as bytes (IDX images) is converted here,
 * each byte to exactly its value 0..255: the loop reads a quarter of the memory an f32 copy
 * would, and the weights the step is about to use stay in the caches (docs/runtime.md,
 * "Gathering a batch"). */
enum { GATHER_AHEAD_BYTES = 4096, GATHER_BLOCK = 16 };

/* Values of at most this many bytes stay in the caches from one batch to the next (a core's
 * L2 holds several times more): their rows are copied without prefetching, which would only
 * cost instructions, and a tiny model's step is not much more than its gather. */
enum { GATHER_RESIDENT_BYTES = 256 << 10 };

/* Asks for the cache lines of bytes [p, p + n). */
static void prefetch_bytes(const char *p, size_t n) {
    for (size_t at = 0; at < n; at += RT_CACHE_LINE) rt_prefetch_line(p + at);
    if (n > 0) rt_prefetch_line(p + n - 1);
}

/* n bytes to n elements. Blocks of a fixed size, which compilers turn into vector
 * conversions without a cost model's leave; then the tail. restrict: without it GCC checked
 * for an overlap of dst and src before each block of 16 (a scalar loop if they overlap),
 * about 58 instructions a block where the vector code is 22 (callgrind, W1's gather). */
static void bytes_to_f32_any(float *restrict dst, const unsigned char *restrict src, int64_t n) {
    int64_t e = 0;
    for (; e + GATHER_BLOCK <= n; e += GATHER_BLOCK)
        for (int k = 0; k < GATHER_BLOCK; k++) dst[e + k] = (float)src[e + k];
    for (; e < n; e++) dst[e] = (float)src[e];
}

static void bytes_to_f64_any(double *restrict dst, const unsigned char *restrict src, int64_t n) {
    int64_t e = 0;
    for (; e + GATHER_BLOCK <= n; e += GATHER_BLOCK)
        for (int k = 0; k < GATHER_BLOCK; k++) dst[e + k] = (double)src[e + k];
    for (; e < n; e++) dst[e] = (double)src[e];
}

/* The same with AVX2, where the CPU has it (the runtime is built for any x86-64): 8 bytes
 * widened and converted by two instructions, where SSE2 takes about 11 for 16 (W1's gather,
 * with its rows in the caches, was bound by those instructions). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2"))) static void
bytes_to_f32_avx2(float *restrict dst, const unsigned char *restrict src, int64_t n) {
    int64_t e = 0;
    for (; e + 8 <= n; e += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(src + e));
        _mm256_storeu_ps(dst + e, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)));
    }
    for (; e < n; e++) dst[e] = (float)src[e];
}

__attribute__((target("avx2"))) static void
bytes_to_f64_avx2(double *restrict dst, const unsigned char *restrict src, int64_t n) {
    int64_t e = 0;
    for (; e + 4 <= n; e += 4) {
        int32_t four;
        memcpy(&four, src + e, sizeof four);
        __m128i words = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
        _mm256_storeu_pd(dst + e, _mm256_cvtepi32_pd(words));
    }
    for (; e < n; e++) dst[e] = (double)src[e];
}

static int has_avx2(void) {
    /* One answer for the process. Threads that gather at once may both ask the CPU: each
     * stores the same value, atomically (ThreadSanitizer runs the workers). */
    static _Atomic int known = -1;
    int avx2 = atomic_load_explicit(&known, memory_order_relaxed);
    if (avx2 < 0) {
        avx2 = __builtin_cpu_supports("avx2") != 0;
        atomic_store_explicit(&known, avx2, memory_order_relaxed);
    }
    return avx2;
}
#else
static int has_avx2(void) {
    return 0;
}
#define bytes_to_f32_avx2 bytes_to_f32_any
#define bytes_to_f64_avx2 bytes_to_f64_any
#endif

static void bytes_to_f32(float *restrict dst, const unsigned char *restrict src, int64_t n) {
    (has_avx2() ? bytes_to_f32_avx2 : bytes_to_f32_any)(dst, src, n);
}

static void bytes_to_f64(double *restrict dst, const unsigned char *restrict src, int64_t n) {
    (has_avx2() ? bytes_to_f64_avx2 : bytes_to_f64_any)(dst, src, n);
}

/* A row's part of a few bytes (a tiny model's inputs and targets): a call to memcpy would cost
 * more than the copy. Whole 8-byte words, the last one overlapping the one before when n is
 * not a multiple of 8; below 8 bytes the same with 4-byte words, then single bytes. */
enum { SMALL_PART = 64 };

static void copy_word(char *to, const char *from, size_t size) {
    uint64_t word = 0;
    memcpy(&word, from, size); /* a fixed size (8 or 4) where inlined: a load, not a call */
    memcpy(to, &word, size);
}

static void copy_small(char *to, const char *from, size_t n) {
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) copy_word(to + i, from + i, 8);
        if (i < n) copy_word(to + n - 8, from + n - 8, 8);
    } else if (n >= 4) {
        copy_word(to, from, 4);
        copy_word(to + n - 4, from + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) to[i] = from[i];
    }
}

/* Where a batch's rows come from: rows[0..count), or first..first+count-1 when rows is NULL. */
typedef struct batch_rows {
    const int64_t *rows;
    int64_t first, count;
    int64_t place; /* the batch's sample the first row goes to */
} batch_rows;

static int64_t row_at(const batch_rows *br, int64_t b) {
    return br->rows ? br->rows[b] : br->first + b;
}

/* Rows of part bytes, small enough to be in the caches: nothing but the copies. */
static void copy_resident_rows(char *dst, const char *src, size_t row_bytes, size_t part,
                               const batch_rows *br) {
    for (int64_t b = 0; b < br->count; b++)
        copy_small(dst + (size_t)b * part, src + (size_t)row_at(br, b) * row_bytes, part);
}

/* One tensor's part (part bytes at src within each row of row_bytes; elems elements) of every
 * row of the batch into dst, prefetching the rows `ahead` on (0: none), converting bytes when
 * as_bytes. Out of line: its conversions, vectorised, would crowd the registers and the stack
 * frame of the small rows' loop in gather_tensors. */
static void __attribute__((noinline))
gather_rows(const nnrt_model *m, char *dst, const char *src, size_t row_bytes, size_t part,
            int64_t elems, int as_bytes, int64_t ahead, const batch_rows *br) {
    size_t esize = rt_elem_size(m->f64);
    for (int64_t b = 0; b < ahead && b < br->count; b++)
        prefetch_bytes(src + (size_t)row_at(br, b) * row_bytes, part);
    for (int64_t b = 0; b < br->count; b++) {
        if (b + ahead < br->count)
            prefetch_bytes(src + (size_t)row_at(br, b + ahead) * row_bytes, part);
        const char *from = src + (size_t)row_at(br, b) * row_bytes;
        char *to = dst + (size_t)(b * elems) * esize;
        if (!as_bytes && part <= SMALL_PART)
            copy_small(to, from, part);
        else if (!as_bytes)
            memcpy(to, from, part);
        else if (m->f64)
            bytes_to_f64((double *)to, (const unsigned char *)from, elems);
        else
            bytes_to_f32((float *)to, (const unsigned char *)from, elems);
    }
}

/* Copies every row's part of `values` (n_rows rows, row-major, row_elems a row, stored as
 * bytes when as_bytes, else in the model's element type) into each tensor's buffer. */
static void gather_tensors(const nnrt_model *m, nnrt_ctx *ctx, const nnrt_tensor *tensors,
                           int32_t n, const void *values, int64_t n_rows, int64_t row_elems,
                           int as_bytes, const batch_rows *br) {
    size_t src_size = as_bytes ? 1 : rt_elem_size(m->f64);
    size_t row_bytes = (size_t)row_elems * src_size;
    int resident = (size_t)n_rows * row_bytes <= GATHER_RESIDENT_BYTES;
    int64_t at = 0; /* the tensor's first element within a row */
    for (int32_t i = 0; i < n; i++) {
        const nnrt_tensor *t = &tensors[i];
        char *dst = (char *)rt_tensor_data(m, ctx, t) +
                    (size_t)(br->place * t->numel) * rt_elem_size(m->f64);
        const char *src = (const char *)values + (size_t)at * src_size;
        size_t part = (size_t)t->numel * src_size;
        at += t->numel;
        if (resident && !as_bytes && part <= SMALL_PART) {
            copy_resident_rows(dst, src, row_bytes, part, br);
            continue;
        }
        int64_t ahead = resident                     ? 0
                        : part >= GATHER_AHEAD_BYTES ? 1
                                                     : (int64_t)(GATHER_AHEAD_BYTES / (part + 1));
        gather_rows(m, dst, src, row_bytes, part, t->numel, as_bytes, ahead, br);
    }
}

static void fill_rows(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, const batch_rows br,
                      int with_targets) {
    if (d->text) {
        for (int64_t b = 0; b < br.count; b++)
            rt_text_fill_row(m, ctx, d, row_at(&br, b), br.place + b, with_targets);
    } else {
        /* a model without inputs has no values array to offset into */
        if (m->n_inputs > 0)
            gather_tensors(m, ctx, m->inputs, m->n_inputs, d->inputs, d->rows, d->input_elems,
                           d->inputs_u8, &br);
        if (with_targets && m->n_targets > 0)
            gather_tensors(m, ctx, m->targets, m->n_targets, d->targets, d->rows, d->target_elems,
                           0, &br);
    }
}

void rt_fill_batch(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, const int64_t *rows,
                   int64_t first, int64_t count, int with_targets) {
    fill_rows(m, ctx, d, (batch_rows){rows, first, count, 0}, with_targets);
    ctx->batch = count;
}

/* Asks for the lines of rows[0..count) of values (n_rows rows of row_bytes), now or queued
 * for the step's products (lines_ahead.h), unless they all stay in the caches anyway. */
static void prefetch_rows(const void *values, int64_t n_rows, size_t row_bytes, const int64_t *rows,
                          int64_t count, int queued) {
    if ((size_t)n_rows * row_bytes <= GATHER_RESIDENT_BYTES) return;
    if (queued)
        rt_lines_ahead_queue(values, row_bytes, rows, count);
    else
        rt_lines_ask_now(values, row_bytes, rows, count);
}

static size_t input_row_bytes(const nnrt_model *m, const rt_dataset *d) {
    return (size_t)d->input_elems * (d->inputs_u8 ? 1 : rt_elem_size(m->f64));
}

static void prefetch_batch(const nnrt_model *m, const rt_dataset *d, const int64_t *rows,
                           int64_t count, int queued) {
    if (d->text) return;
    if (m->n_inputs > 0)
        prefetch_rows(d->inputs, d->rows, input_row_bytes(m, d), rows, count, queued);
    if (m->n_targets > 0 && d->targets)
        prefetch_rows(d->targets, d->rows, (size_t)d->target_elems * rt_elem_size(m->f64), rows,
                      count, queued);
}

void rt_prefetch_batch(const nnrt_model *m, const rt_dataset *d, const int64_t *rows,
                       int64_t count) {
    prefetch_batch(m, d, rows, count, 0);
}

void rt_prefetch_batch_in_step(const nnrt_model *m, const rt_dataset *d, const int64_t *rows,
                               int64_t count) {
    prefetch_batch(m, d, rows, count, 1);
}

size_t rt_batch_input_bytes(const nnrt_model *m, const rt_dataset *d, int64_t count) {
    return d->text || m->n_inputs == 0 ? 0 : (size_t)count * input_row_bytes(m, d);
}

void rt_fill_rows(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, const int64_t *rows,
                  int64_t place, int64_t count) {
    fill_rows(m, ctx, d, (batch_rows){rows, 0, count, place}, 1);
}

/* ---- metrics ---- */

/* nan and inf have every exponent bit set; the bits are ORed over the values, so the loop has
 * no exit and vectorises. */
int rt_any_nonfinite(const void *values, int64_t n, int f64) {
    unsigned bad = 0;
    if (f64) {
        const uint64_t exponent = 0x7ff0000000000000u;
        for (int64_t e = 0; e < n; e++) {
            uint64_t bits;
            memcpy(&bits, (const char *)values + 8 * e, 8);
            bad |= (bits & exponent) == exponent;
        }
    } else {
        const uint32_t exponent = 0x7f800000u;
        for (int64_t e = 0; e < n; e++) {
            uint32_t bits;
            memcpy(&bits, (const char *)values + 4 * e, 4);
            bad |= (bits & exponent) == exponent;
        }
    }
    return bad != 0;
}

double rt_batch_cost(const nnrt_model *m, const nnrt_ctx *ctx) {
    const void *loss = rt_tensor_data(m, ctx, &m->loss);
    if (!m->loss.varying) return rt_get(loss, 0, m->f64);
    double sum = 0.0;
    if (m->f64)
        for (int64_t b = 0; b < ctx->batch; b++) sum += ((const double *)loss)[b];
    else
        for (int64_t b = 0; b < ctx->batch; b++) sum += ((const float *)loss)[b];
    return sum / (double)ctx->batch;
}

rt_class_layout rt_class_layout_of(const nnrt_model *m) {
    const nnrt_tensor *out = &m->output;
    int64_t classes = out->rank > 0 ? out->dims[out->rank - 1] : 1;
    rt_class_layout l = {.steps = classes > 0 ? out->numel / classes : 1, .classes = classes};
    if (m->n_targets == 0) return l;
    int64_t n_target = m->targets[0].numel;
    if (n_target == out->numel) return l;
    if (classes > 1 && n_target == l.steps) {
        l.target_ids = 1;
        return l;
    }
    /* Any other target: the whole output is one prediction, as before steps existed. */
    return (rt_class_layout){.steps = 1, .classes = out->numel};
}

/* Where one output value becomes class 1: 0 for a logit, 0.5 for a probability. */
static inline double output_threshold(const nnrt_model *m) {
    return m->train.classification == NNRT_ACCURACY_LOGIT ? 0.0 : 0.5;
}

/* The class of one output row: the first of its largest values, or for one value whether it
 * is past the threshold. Inlined into the metrics' loop over a batch with f64 a constant
 * (correct_in_batch): a batch of a tiny model is a handful of rows, and a call a row, or a
 * branch on the element type a value, cost more than the row. */
static inline int64_t class_of(const nnrt_model *m, const void *row, int64_t classes, int f64) {
    if (classes == 1) return rt_get(row, 0, f64) > output_threshold(m);
    /* The first of the largest; each type's own loop, no branch on it. Selects, not
     * branches: where the largest is is the data's, and a mispredicted jump a new largest
     * value cost more than the row's comparisons. */
    int64_t best = 0;
    if (f64) {
        const double *v = row;
        double top = v[0];
        for (int64_t i = 1; i < classes; i++) {
            int more = v[i] > top;
            best = more ? i : best;
            top = more ? v[i] : top;
        }
    } else {
        const float *v = row;
        float top = v[0];
        for (int64_t i = 1; i < classes; i++) {
            int more = v[i] > top;
            best = more ? i : best;
            top = more ? v[i] : top;
        }
    }
    return best;
}

int64_t rt_class_of(const nnrt_model *m, const void *row, int64_t classes) {
    return class_of(m, row, classes, m->f64);
}

/* The class a step's target names: its id, or the one-hot row's largest entry (for one
 * value, whether it is past 0.5). */
static inline int64_t target_class(const nnrt_model *m, const rt_class_layout *l,
                                   const void *target, int64_t step, int f64) {
    if (l->target_ids) return (int64_t)llround(rt_get(target, step, f64));
    const void *row = rt_elem_cptr(target, step * l->classes, f64);
    if (l->classes == 1) return rt_get(row, 0, f64) > 0.5;
    return class_of(m, row, l->classes, f64);
}

/* The steps of the batch's samples whose predicted class is the target's. Targets are read
 * from the data set (the rows `rows`, or from `first` on when it is NULL). */
static inline __attribute__((always_inline)) int64_t
correct_in_batch(const nnrt_model *m, const rt_class_layout *l, const void *output,
                 const rt_dataset *d, const int64_t *rows, int64_t first, int64_t batch, int f64) {
    int64_t n_out = m->output.numel, correct = 0;
    for (int64_t b = 0; b < batch; b++) {
        int64_t row = rows ? rows[b] : first + b;
        const void *target = d->text ? rt_text_target_row(m, d, row)
                                     : rt_elem_cptr(d->targets, row * d->target_elems, f64);
        const void *out = rt_elem_cptr(output, b * n_out, f64);
        for (int64_t s = 0; s < l->steps; s++) {
            const void *step_out = rt_elem_cptr(out, s * l->classes, f64);
            correct += class_of(m, step_out, l->classes, f64) == target_class(m, l, target, s, f64);
        }
    }
    return correct;
}

/* The same count for one thresholded output a sample and a target of one value (a binary
 * classifier, as XOR's): a comparison a row, with the threshold out of the loop. A batch of a
 * tiny model is a handful of rows, where the general loop's layout tests cost more than the
 * rows themselves. */
static inline __attribute__((always_inline)) int64_t
correct_of_one_output(const nnrt_model *m, const void *output, const rt_dataset *d,
                      const int64_t *rows, int64_t first, int64_t batch, int f64) {
    double threshold = output_threshold(m);
    int64_t stride = d->target_elems, correct = 0;
    for (int64_t b = 0; b < batch; b++) {
        int64_t row = rows ? rows[b] : first + b;
        int said = rt_get(output, b, f64) > threshold;
        correct += said == (rt_get(d->targets, row * stride, f64) > 0.5);
    }
    return correct;
}

/* One output value a sample (either layout of rt_class_layout_of), and targets of numbers. */
static int one_output(const rt_class_layout *l, const rt_dataset *d) {
    return l->classes == 1 && l->steps == 1 && !d->text;
}

static int64_t correct_in_batch_f32(const nnrt_model *m, const rt_class_layout *l,
                                    const void *output, const rt_dataset *d, const int64_t *rows,
                                    int64_t first, int64_t batch) {
    if (one_output(l, d)) return correct_of_one_output(m, output, d, rows, first, batch, 0);
    return correct_in_batch(m, l, output, d, rows, first, batch, 0);
}

static int64_t correct_in_batch_f64(const nnrt_model *m, const rt_class_layout *l,
                                    const void *output, const rt_dataset *d, const int64_t *rows,
                                    int64_t first, int64_t batch) {
    if (one_output(l, d)) return correct_of_one_output(m, output, d, rows, first, batch, 1);
    return correct_in_batch(m, l, output, d, rows, first, batch, 1);
}

void rt_add_metrics(rt_metrics *acc, rt_metrics more) {
    acc->loss_sum += more.loss_sum;
    acc->correct += more.correct;
    acc->samples += more.samples;
    acc->judged += more.judged;
}

/* The losses, in the rows' order as ever, by a loop of nothing but additions: into the
 * running sum *acc (the epoch's) and into the batch's own sum from 0, the one rt_batch_cost
 * takes, so that a step reads its losses once for both. The same additions in the same
 * order as two loops would make, so the same bits. */
static double add_batch_losses(const nnrt_model *m, const nnrt_ctx *ctx, rt_metrics *acc) {
    const void *loss = rt_tensor_data(m, ctx, &m->loss);
    if (!m->loss.varying) { /* one loss for the batch, counted once a row */
        double v = rt_get(loss, 0, m->f64);
        for (int64_t b = 0; b < ctx->batch; b++) acc->loss_sum += v;
        return v;
    }
    double running = acc->loss_sum, batch = 0.0;
    if (m->f64)
        for (int64_t b = 0; b < ctx->batch; b++) {
            double v = ((const double *)loss)[b];
            running += v;
            batch += v;
        }
    else
        for (int64_t b = 0; b < ctx->batch; b++) {
            double v = (double)((const float *)loss)[b];
            running += v;
            batch += v;
        }
    acc->loss_sum = running;
    return batch / (double)ctx->batch;
}

double rt_add_batch_metrics(const nnrt_model *m, const nnrt_ctx *ctx, const rt_dataset *d,
                            const int64_t *rows, int64_t first, rt_metrics *acc) {
    int classify = m->train.classification && d && (d->targets || d->text) && m->n_targets > 0;
    rt_class_layout layout = rt_class_layout_of(m);
    double cost = add_batch_losses(m, ctx, acc);
    if (classify) {
        const void *output = rt_tensor_data(m, ctx, &m->output);
        acc->correct += (m->f64 ? correct_in_batch_f64 : correct_in_batch_f32)(
            m, &layout, output, d, rows, first, ctx->batch);
    }
    acc->samples += ctx->batch;
    acc->judged += ctx->batch * layout.steps;
    return cost;
}

rt_metrics rt_evaluate_ctx(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d,
                           const int64_t *rows, int64_t n) {
    rt_metrics r = {0};
    int64_t cap = ctx->batch_cap;
    ctx->training = 0;
    for (int64_t i = 0; i < n; i += cap) {
        int64_t count = n - i < cap ? n - i : cap;
        const int64_t *chunk_rows = rows ? rows + i : NULL;
        rt_fill_batch(m, ctx, d, chunk_rows, i, count, 1);
        m->forward(ctx);
        rt_add_batch_metrics(m, ctx, d, chunk_rows, i, &r);
    }
    return r;
}

rt_metrics rt_evaluate(const nnrt_model *m, void *fixed, const rt_dataset *d, const int64_t *rows,
                       int64_t n) {
    rt_metrics r = {0};
    if (m->n_inputs == 0) {
        nnrt_ctx ctx = rt_new_ctx(m, fixed, 1);
        m->forward(&ctx);
        rt_add_batch_metrics(m, &ctx, NULL, NULL, 0, &r);
        rt_free_ctx_varying(&ctx);
        return r;
    }
    nnrt_ctx ctx = rt_new_ctx(m, fixed, rt_eval_batch(m, n));
    r = rt_evaluate_ctx(m, &ctx, d, rows, n);
    rt_free_ctx_varying(&ctx);
    return r;
}

/* grad()'s hook (nnrt.h): the listener's own function says what a point means to it. */
void nnrt_grads_done(void *listener, int32_t point) {
    nnrt_grads_listener *l = listener;
    l->done(l, point);
}
